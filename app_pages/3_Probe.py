"""Probe page: measure a vLLM server on this machine's GPU (or an endpoint) from the browser.

Thin page: GPU status (``probes.observe.gpu.inspect``), the source and launch-plan pickers, a form (keys ``probe_``)
-> ``ui.probe_view.build_request`` -> ``probes.job.ProbeJob`` started from the Start button's callback and
kept in ``st.session_state["probe_job"]`` (never a module global). While it runs, a fragment polls it every
two seconds (progress, partial table and charts); the script thread never waits on it. Stop calls
``ProbeJob.stop`` (the server is torn down even if the sweep thread hangs). One probe per GPU: a probe of
another session or of the CLI (``running_probe``) disables Start. ``APP__PROBE__ENABLED=0``: no Start.
A machine that cannot start a managed vLLM (no vLLM interpreter, a broken one, or a GPU build without a
GPU: ``probes.target.readiness``) says so up front with what can be done, and Start is disabled for the
managed sources with the reason (attaching to an endpoint still works).
The endpoint API key is read once, by the Start callback, then cleared from the session and from the job.
"""

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

from calculators import catalog, modelspec
from calculators.filelimits import MAX_CONFIG_BYTES, parse_json
from calculators.memory import WEIGHT_DTYPES
from probes.errors import ProbeError
from probes.job import ProbeJob, running_probe
from probes.observe import gpu as gpu_mod
from probes.results.reference import gpu_catalog_id
from probes.results.store import ResultStore
from probes.settings import load_settings
from probes.target.readiness import WHAT_CAN_BE_DONE, ManagedReadiness, managed_readiness
from ui import cached, probe_view, results_view, search_view, state

st.set_page_config(page_title="Probe · Self-host or API?", page_icon="🔬", layout="wide")

JOB_KEY = "probe_job"
MESSAGE_KEY = "probe_message"
PLAN_KEY = "probe_plan_signature"
SOURCE_LABELS = {"synthetic": "Synthetic model", "model": "Real model", "endpoint": "Endpoint URL"}


@st.cache_data(ttl=300, max_entries=1, show_spinner=False)
def _gpu_snapshot() -> dict:
    return gpu_mod.snapshot_to_dict(gpu_mod.inspect())


@st.cache_data(ttl=300, max_entries=16, show_spinner="Checking the vLLM interpreter…")
def _readiness(python: str, gpu_available: bool) -> ManagedReadiness:
    return managed_readiness(python, gpu_available=gpu_available)


@st.cache_data(max_entries=64, show_spinner=False)
def _plan(model_id: str, gpu_id: str, gpus: int, dtype: str, input_tokens: int, output_tokens: int,
          free_gib: float | None) -> tuple[str, pd.DataFrame, tuple[str, ...], str, tuple[str, ...]]:
    """(flags text, flag table, warnings, will-not-start reason, caps) of the launch plan for the scenario's
    request shape and the free memory measured here."""
    plan = probe_view.launch_plan(model_id, gpu_id, gpus, dtype, input_tokens=input_tokens,
                                  output_tokens=output_tokens, free_gib_at_start=free_gib)
    if plan is None:
        return "", pd.DataFrame(columns=["flag", "value", "why"]), (), "", ()
    rows = pd.DataFrame([{"flag": f.name, "value": f.value or "", "why": f.reason} for f in plan.flags],
                        columns=["flag", "value", "why"])
    return probe_view.flags_text(plan), rows, plan.warnings, plan.will_not_start, plan.caps


def _save_upload(data: bytes, name: str, data_dir: str) -> str:
    """Write an uploaded config.json under the data dir (its folder name becomes the served model name)."""
    config = parse_json(data, limit=MAX_CONFIG_BYTES, what=name)  # size, depth, numbers: one-line ValueError
    if not isinstance(config, dict) or "vocab_size" not in config:
        raise ValueError(f"{name} is not a model config.json (no vocab_size)")
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(name).stem) or "config"
    folder = Path(data_dir) / "uploads" / f"{stem}-{hashlib.sha256(data).hexdigest()[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_bytes(data)
    return str(folder / "config.json")


def _start(settings) -> None:
    """Start button callback: build the request from the widget values, start the job, forget the key."""
    ss = st.session_state
    api_key = ss.get("probe_api_key") or ""
    ss["probe_api_key"] = ""  # read once: never kept in the session
    try:
        source = ss.get("probe_source", "synthetic")
        synthetic = ss.get("probe_synthetic") or "tiny"
        upload = ss.get("probe_upload")
        if source == "synthetic" and upload is not None:
            synthetic = _save_upload(upload.getvalue(), upload.name, settings.data_dir)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        log_dir = Path(settings.data_dir) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        form = probe_view.ProbeForm(
            source=source, synthetic=synthetic, model=ss.get("probe_model", ""),
            endpoint=ss.get("probe_endpoint", ""), api_key=api_key, vllm_python=ss.get("probe_python", ""),
            flags=ss.get("probe_flags", ""), input_tokens=ss["probe_input"], output_tokens=ss["probe_output"],
            num_requests=ss["probe_requests"], concurrency=ss["probe_concurrency"],
            shared_prefix_count=ss["probe_prefix_count"], shared_prefix_tokens=ss["probe_prefix_tokens"],
            seed=ss["probe_seed"], warmup_requests=ss["probe_warmup"], goodput_ttft_ms=ss["probe_ttft_target"],
            goodput_tpot_ms=ss["probe_tpot_target"], saturation_pct=ss["probe_saturation"],
            gpus=ss.get("probe_gpus", 1), log_path=str(log_dir / f"vllm-{stamp}.log"))
        req = probe_view.build_request(form)
        req = search_view.apply_search(req, search_view.form_from_state(ss))  # the SLO search, when switched on
        job = ProbeJob(req, settings=settings, store=ResultStore(settings.db_path))
        job.start()
    except (ValueError, ProbeError, OSError) as exc:
        ss[MESSAGE_KEY] = ("error", f"Not started: {exc}")
        return
    ss[JOB_KEY] = job
    ss[MESSAGE_KEY] = ("info", f"Probe started ({form.source}: {req.synthetic or req.model or req.endpoint}).")


def _stop() -> None:
    job = st.session_state.get(JOB_KEY)
    if job is not None:
        job.stop(timeout_s=60.0)


scenario = state.get_scenario()  # keep the scenario (and its URL) across page switches
st.title("Probe")
st.caption("Measure throughput and latency of vLLM on this machine's GPU (or of an endpoint) with the same "
           "metrics as `vllm bench serve`; results go to the Results page and can feed the break-even.")
try:
    settings = load_settings()
except ValueError as exc:
    st.error(f"Probe settings: {exc}")
    st.stop()

head, refresh = st.columns([4, 1])
head.subheader("GPU")
if refresh.button("Refresh GPU status", key="probe_refresh"):
    _gpu_snapshot.clear()
    _readiness.clear()
snapshot = _gpu_snapshot()
probe_view.gpu_status_panel(snapshot)

if not settings.enabled:
    st.info("Probing is switched off for this deployment (APP__PROBE__ENABLED=0): no probe can be started "
            "here. Stored and reference measurements are on the Results page.")
    st.page_link("app_pages/4_Results.py", label="Results", icon="📊")
    st.stop()

st.session_state.setdefault("probe_python", settings.vllm_python or "")
ready = _readiness(st.session_state["probe_python"], bool(snapshot.get("available")))
if not ready.ok:
    st.warning(f"This machine cannot start a managed vLLM: {ready.reason}.")
    st.markdown("What you can do:\n" + "\n".join(f"- {line[:1].upper()}{line[1:]}" for line in WHAT_CAN_BE_DONE))
    st.page_link("app_pages/4_Results.py", label="Results (reference runs)", icon="📊")
elif ready.cpu_build:
    st.caption(f"vLLM {ready.vllm_version or '?'} CPU build: fine for small models and correctness checks, "
               "not for GPU throughput claims.")

job = st.session_state.get(JOB_KEY)
running = job is not None and job.running
other = None if running else running_probe(settings.data_dir, 0)

st.subheader("What to probe")
source = st.radio("Source", list(SOURCE_LABELS), key="probe_source", horizontal=True,
                  format_func=SOURCE_LABELS.get)
model_ids = list(modelspec.models())
plan_model = None
if source == "synthetic":
    plan_model = st.selectbox("Synthetic model (random weights of the real shape, `--load-format dummy`)",
                              ["tiny", *model_ids], key="probe_synthetic")
    st.file_uploader("…or upload a config.json (used instead of the choice above)", type=["json"],
                     key="probe_upload", max_upload_size=4)  # MiB: MAX_CONFIG_BYTES
elif source == "model":
    plan_model = st.text_input("Model id or local path (real weights)", key="probe_model",
                               placeholder="meta-llama/Llama-3.1-8B-Instruct")
else:
    st.text_input("Endpoint URL (OpenAI-compatible)", key="probe_endpoint", placeholder="http://127.0.0.1:8000")
    st.text_input("API key (sent to the endpoint only, never stored)", type="password", key="probe_api_key")

gpu_ids = list(catalog.gpus())
detected = next((g for g in (gpu_catalog_id(x.get("name")) for x in snapshot.get("gpus") or []) if g), None)
if source != "endpoint":
    st.text_input("vLLM interpreter (python of vLLM's environment)", key="probe_python")
    c = st.columns(3)
    gpu_id = c[0].selectbox("GPU (for the launch plan)", gpu_ids, key="probe_gpu",
                            index=gpu_ids.index(detected or "h100-sxm"), format_func=lambda g: catalog.gpu(g).name)
    gpus = c[1].selectbox("GPUs (tensor parallel)", [1, 2, 4, 8], key="probe_gpus")
    dtype = c[2].selectbox("Weights", WEIGHT_DTYPES, key="probe_dtype")
    # the plan is sized for the scenario's requests and capped by this GPU's free memory (NVML), when measured
    shape = (max(1, round(scenario.traffic.input_tokens)), max(1, round(scenario.traffic.output_tokens)))
    free_gib, free_note = cached.free_gib_at_start(gpu_id, int(gpus), cached.devices_from_snapshot(snapshot))
    try:
        flags, flag_rows, warnings, will_not_start, caps = _plan(plan_model or "", gpu_id, int(gpus), dtype,
                                                                 *shape, free_gib)
    except ValueError as exc:
        st.error(f"No launch plan: {exc}")
        flags, flag_rows, warnings, will_not_start, caps = "", pd.DataFrame(), (), "", ()
    if will_not_start:
        st.error(f"The launch plan says vLLM will not start: {will_not_start}. No flags are prefilled; see the "
                 "Capacity page for what would fit.")
    signature = (plan_model, gpu_id, gpus, dtype, shape, free_gib)
    if st.session_state.get(PLAN_KEY) != signature or "probe_flags" not in st.session_state:
        # a new model/GPU (or the box was hidden): prefill the flags from its launch plan
        st.session_state[PLAN_KEY] = signature
        st.session_state["probe_flags"] = flags

search_view.search_controls(disabled=running)  # SLO capacity search settings (ui/search_view.py)

with st.form("probe_form"):
    if source != "endpoint":
        st.text_area("vLLM flags (editable; prefilled from the launch plan)", key="probe_flags", height=150)
    c = st.columns(4)
    c[0].number_input("Input tokens", min_value=1, value=512, key="probe_input")
    c[1].number_input("Output tokens", min_value=1, value=128, key="probe_output")
    c[2].number_input("Requests per point", min_value=1, value=16, key="probe_requests")
    c[3].text_input("Concurrency list", value="1,4,16", key="probe_concurrency")
    c = st.columns(4)
    c[0].number_input("Shared prefixes (0 = none)", min_value=0, value=0, key="probe_prefix_count")
    c[1].number_input("Shared prefix tokens", min_value=0, value=0, key="probe_prefix_tokens")
    c[2].number_input("Seed", min_value=0, value=0, key="probe_seed")
    c[3].number_input("Warm-up requests per point", min_value=0, value=2, key="probe_warmup")
    c = st.columns(3)
    c[0].number_input("TTFT p99 target ms (0 = none)", min_value=0.0, value=0.0, key="probe_ttft_target")
    c[1].number_input("TPOT p99 target ms (0 = none)", min_value=0.0, value=0.0, key="probe_tpot_target")
    c[2].number_input("Stop early below this gain, % (0 = never)", min_value=0.0, value=5.0,
                      key="probe_saturation")
    blocked = None if source == "endpoint" or ready.ok else ready.reason
    st.form_submit_button("Start probe", key="probe_start", type="primary", on_click=_start, args=(settings,),
                          disabled=running or other is not None or blocked is not None,
                          help=f"Disabled: {blocked}" if blocked else None)
    if blocked:
        st.caption(f"Start is disabled: {blocked}. Attaching to an endpoint still works.")

if source != "endpoint" and not will_not_start:
    if flag_rows.empty:
        st.caption("No launch plan for this model (not in the model catalog): vLLM's defaults apply, plus "
                   "the flags above.")
    else:
        with st.expander("Why these flags (launch plan)"):
            st.caption(f"Sized for the scenario's requests ({shape[0]:,} in + {shape[1]:,} out). Free memory at "
                       f"start: {free_note}.")
            for cap in caps:
                st.caption(f"Cap: {cap}")
            st.dataframe(flag_rows, hide_index=True, key="probe_flag_table")
            for w in warnings:
                st.caption(f"⚠ {w}")

message = st.session_state.pop(MESSAGE_KEY, None)
if message is not None:
    (st.error if message[0] == "error" else st.info)(message[1])
if other is not None:
    probe_view.busy_panel(other)


@st.fragment(run_every=2.0)
def _live() -> None:
    job = st.session_state.get(JOB_KEY)
    if job is None:
        return
    if not job.running:
        st.rerun()  # the whole page: show the finished run
    fraction, text = probe_view.progress_text(job.progress)
    st.progress(fraction, text=f"{job.phase}: {text}")
    run = job.run
    if run and run.get("points"):
        st.dataframe(results_view.points_frame(run).round(2), hide_index=True, key="probe_live_points")
        results_view.show_charts(run, key="probe_live")


if job is not None:
    st.subheader("Run")
    if running:
        _live()
        st.button("Stop", key="probe_stop", on_click=_stop)
    else:
        if job.req.api_key:
            job.req = dataclasses.replace(job.req, api_key=None)
        run = job.run or {}
        if job.error and not run.get("error"):
            st.error(f"Probe {job.phase}: {job.error}")
        tail = probe_view.read_log_tail(job.req.log_path)
        if (job.error or run.get("error")) and tail:
            with st.expander("Last lines of the vLLM log", expanded=not run.get("points")):
                st.code(tail, language="text")
        if run:
            st.success(f"Probe {run.get('status')}: run {job.run_id} saved to the results store."
                       if job.run_id else f"Probe {run.get('status')}.")
            results_view.show_run(run, key="probe_result", run_name=f"probe run {job.run_id or 'unsaved'}")

if job is not None and not running:  # the SLO search's answer, for a search run (ui/search_view.py)
    search_view.operating_point_panel(job.run)
