"""Capacity page: will the model fit, how fast for the scenario's requests, how to launch vLLM, the article's claims.

Thin page, live (no Analyse button: every widget change reruns it, the calculators are cached): sidebar widgets
(keys ``cap_``) -> ``ui.capacity_view.build_inputs`` (a rejected value keeps its last good one and is named by
its label) -> cached ``fit`` / ``plan_launch`` / ``shape_estimate`` -> Plotly (``calculators.figures``). The request
shape is the scenario's (input/output tokens, shared with Break-even). Each "what would fit" line is a button
that applies its change; a deployment that will not start says why instead of printing a command. The launch
plan's utilization is capped by this machine's free GPU memory (NVML) when it has the planned GPU.
"Calibrate from a measured run" (sidebar, key ``cap_calibrate``: reference runs and the newest 50 stored runs,
one or several) refits the estimate's three constants on those runs' points
(``ui.capacity_view.calibrate_from_runs`` -> ``calculators.calibration``) and labels the estimate with the
source, its error there, and "extrapolated" (a warning) when this GPU or model is not one the runs measured.
"""

import shlex
from pathlib import Path

import pandas as pd
import streamlit as st

from calculators import catalog, figures, modelspec
from calculators.calibration import Calibration
from calculators.claims import ARTICLE, ARTICLE_CLAIMS, check_claim
from calculators.launch import kv_room_sequences, plan_launch
from calculators.memory import KV_CACHE_DTYPES, VLLM_0_26, WEIGHT_DTYPES, FitInput, fit
from calculators.provenance import ThroughputContext
from calculators.roofline import DEFAULT_MBU, DEFAULT_MFU, RooflineInput, prefill
from probes.errors import StoreError
from probes.results import reference
from probes.results.store import default_db_url, open_store
from probes.settings import is_postgres_url, load_settings
from ui import cached, capacity_view, inputs, multinode_view, restson_view, state
from ui.widgets import count_text, gib_text

st.set_page_config(page_title="Capacity · Self-host or API?", page_icon="🧮", layout="wide")

LAST_GOOD = "cap_last_good"
ABSURD_FACTOR = 1000  # weights per GPU beyond 1,000x the GPU's memory: a broken config, not a deployment


@st.cache_data(max_entries=32, show_spinner=False)
def _arch_from_upload(data: bytes, name: str) -> modelspec.ModelArch:
    return modelspec.from_config_text(data, model_id=name, where=f"{name}.json")  # errors name the upload




@st.cache_data(ttl=600, max_entries=1, show_spinner=False)
def _reference_runs() -> dict[str, tuple[str, str]]:
    """Calibration choices from the bundled reference runs: ``ref:<key>`` -> (label, path)."""
    out = {}
    for ref in reference.discover():
        try:
            run = reference.load_run(ref.path)
        except ValueError:
            continue
        out[f"ref:{ref.key}"] = (f"{ref.name} · {reference.reference_label(run)}", str(ref.path))
    return out


def _store_url() -> str | None:
    """The results store's path or URL when one exists (the Capacity page never creates a store file)."""
    try:
        db = load_settings().db_path or default_db_url()
    except ValueError:
        return None
    return db if is_postgres_url(db) or Path(db).expanduser().is_file() else None


@st.cache_data(ttl=30, max_entries=4, show_spinner=False)
def _stored_runs(db: str) -> dict[str, str]:
    """Calibration choices from the newest 50 stored runs: ``store:<id>`` -> label."""
    with open_store(db) as store:
        return {f"store:{r['id']}": f"run {r['id']} · {r['model']} · {r['gpu'] or 'no GPU'} · {r['created_at']}"
                for r in store.list_runs(limit=50)}


@st.cache_data(ttl=600, max_entries=16, show_spinner="Calibrating on the runs' points…")
def _calibration(choices: tuple[str, ...], db: str | None) -> Calibration:
    """Fit the closed-loop constants on the chosen runs' points together (``ValueError`` naming the run that
    cannot calibrate)."""
    runs = []
    for choice in choices:
        if choice.startswith("store:"):
            if db is None:
                raise ValueError("the results store is not there any more")
            with open_store(db) as store:
                runs.append((store.get_run(int(choice.removeprefix("store:"))),
                             f"stored {choice.removeprefix('store:')}"))
        else:
            runs.append((reference.load_run(_reference_runs()[choice][1]), choice.removeprefix("ref:")))
    return capacity_view.calibrate_from_runs(runs)


@st.cache_data(max_entries=64, show_spinner=False)
def _analyse(inp: FitInput, rin: RooflineInput, input_tokens: int, output_tokens: int, free_gib: float | None,
             calibration: Calibration | None = None):
    r = fit(inp)
    plan = plan_launch(inp, r, prompt_tokens=input_tokens, input_tokens=input_tokens, output_tokens=output_tokens,
                       free_gib_at_start=free_gib)
    request = min(input_tokens + output_tokens, r.max_model_len)
    running = max(1, min(kv_room_sequences(r.kv_capacity_tokens, request), plan.max_num_seqs or 1))
    # beyond what vLLM runs at once the extra streams queue: the point stays that of `running` streams
    points = [capacity_view.shape_estimate(rin, input_tokens, output_tokens, min(c, running), calibration)
              for c in figures.CONCURRENCIES]
    return r, plan, points, prefill(rin, input_tokens)


@st.cache_data(max_entries=4, show_spinner=False)
def _claims():
    return {k: check_claim(c) for k, c in ARTICLE_CLAIMS.items()}


def _apply(values: dict) -> None:
    """A fix button's callback: put its values into the widgets (before they are drawn on the rerun)."""
    st.session_state.update(values)


scenario = state.get_scenario()
st.title("Capacity")
st.caption(
    f"Memory fit as vLLM {VLLM_0_26.version} sizes its KV cache at startup, a throughput estimate for the "
    "scenario's requests, and a launch plan. Estimates, not measurements: run the probe to measure. "
    "Every change applies at once."
)
capacity_view.seed_shape(scenario)
W = {field: key for field, (key, _label) in capacity_view.WIDGETS.items()}
L = {field: label for field, (_key, label) in capacity_view.WIDGETS.items()}
gpu_ids = list(catalog.gpus())
model_ids = list(modelspec.models())
# defaults through session state, not value=: a fix button may then set any widget without a Streamlit warning.
# The GPU and GPU count start as the scenario's.
tp0 = scenario.self_host.gpus_per_replica
for key, default in {"cap_model": "meta-llama/Llama-3.3-70B-Instruct",
                     W["gpu"]: scenario.self_host.gpu if scenario.self_host.gpu in gpu_ids else gpu_ids[0],
                     W["tensor_parallel_size"]: tp0 if tp0 in capacity_view.TP_OPTIONS else 1, W["weight_dtype"]: "bf16", W["kv_cache_dtype"]: "auto",
                     W["max_model_len"]: 4096, W["gpu_memory_utilization"]: VLLM_0_26.default_gpu_memory_utilization,
                     W["concurrency"]: 32, W["max_loras"]: 0, W["max_lora_rank"]: 16, W["mbu"]: DEFAULT_MBU,
                     W["mfu"]: DEFAULT_MFU}.items():
    st.session_state.setdefault(key, default)
with st.sidebar:
    st.subheader("Deployment")
    source = st.radio("Model", ["Catalog", "Upload config.json"], key="cap_source", horizontal=True)
    if source == "Catalog":
        model_id = st.selectbox("Catalog model", model_ids, key="cap_model")
        upload = None
    else:
        upload = st.file_uploader("config.json", type=["json"], key="cap_upload", max_upload_size=4)  # MiB
    st.selectbox(L["gpu"], gpu_ids, key=W["gpu"], format_func=lambda g: catalog.gpu(g).name)
    st.selectbox(L["tensor_parallel_size"], capacity_view.TP_OPTIONS, key=W["tensor_parallel_size"])
    st.selectbox(L["weight_dtype"], WEIGHT_DTYPES, key=W["weight_dtype"])
    st.selectbox(L["kv_cache_dtype"], KV_CACHE_DTYPES, key=W["kv_cache_dtype"])
    st.number_input(L["max_model_len"], min_value=16, max_value=10_000_000, step=1024, key=W["max_model_len"])
    st.number_input(L["gpu_memory_utilization"], min_value=0.05, max_value=1.0, step=0.01,
                    key=W["gpu_memory_utilization"])
    st.subheader("Requests (the scenario's)")
    inputs.number_inputs(capacity_view.SHAPE)
    st.number_input(L["concurrency"], min_value=1, max_value=100_000, key=W["concurrency"],
                    help="streams sending requests back to back; capped by what the KV cache holds")
    with st.expander("LoRA and efficiencies"):
        st.number_input(L["max_loras"], min_value=0, max_value=64, key=W["max_loras"])
        st.selectbox(L["max_lora_rank"], [8, 16, 32, 64, 128], key=W["max_lora_rank"])
        st.number_input(L["mbu"], min_value=0.05, max_value=1.0, step=0.05, key=W["mbu"])
        st.number_input(L["mfu"], min_value=0.05, max_value=1.0, step=0.05, key=W["mfu"])
    st.subheader("Calibration")
    db_url = _store_url()
    cal_labels = {k: label for k, (label, _path) in _reference_runs().items()}
    if db_url is not None:
        try:
            cal_labels |= _stored_runs(db_url)
        except (OSError, ValueError, StoreError) as exc:
            st.caption(f"Stored runs not listed: {exc}")
    st.session_state["cap_calibrate"] = [c for c in st.session_state.get("cap_calibrate", []) if c in cal_labels]
    cal_choice = st.multiselect("Calibrate from a measured run", list(cal_labels), key="cap_calibrate",
                                format_func=cal_labels.get, placeholder="none: the reference fit (H100 + H200)",
                                help="fit the estimate's bandwidth and compute efficiencies and per-step overhead "
                                     "on the measured points of one run (or several together), then use them "
                                     "for this deployment")

new_scenario, shape_errors = capacity_view.read_shape(scenario)
for error in shape_errors:
    st.error(f"Not applied: {error}.")
if new_scenario != scenario:
    state.set_scenario(new_scenario)  # the Break-even page sees the new request shape
    scenario = new_scenario
input_tokens, output_tokens = capacity_view.request_shape(scenario)

if source == "Upload config.json":
    if upload is None:
        st.info("Upload a model's config.json in the sidebar (or pick Catalog).")
        st.stop()
    try:
        arch = _arch_from_upload(upload.getvalue(), upload.name.removesuffix(".json"))
    except ValueError as exc:
        st.error(f"{upload.name} was not loaded: {exc}")
        st.stop()
else:
    arch = modelspec.model(model_id)

values = {field: st.session_state[key] for field, key in W.items()}
try:
    inp, rin, used, field_errors = capacity_view.build_inputs(arch, values, st.session_state.get(LAST_GOOD))
except ValueError as exc:
    st.error(f"Cannot analyse this input: {exc}")
    st.stop()
st.session_state[LAST_GOOD] = used
for e in field_errors:
    cols = st.columns([4, 1])
    cols[0].error(f"Not applied: {e.message}. Showing {e.label} = {e.used} instead.")
    cols[1].button(f"Use {e.used}", key=f"cap_use_{e.field}", on_click=_apply, args=({e.key: e.used},))
if int(used["max_model_len"]) > arch.max_position_embeddings:
    st.warning(f"{L['max_model_len']} capped at the model's limit, {arch.max_position_embeddings:,} tokens.")

measured, free_note = cached.free_gib_at_start(inp.gpu.id, inp.tensor_parallel_size)
use_measured = measured is not None and st.sidebar.toggle(
    "Cap by this machine's free GPU memory", value=True, key="cap_use_measured",
    help="NVML sees this GPU here: the launch plan's utilization is capped by its free memory now")
free_gib = measured if use_measured else None
calibration = None
if cal_choice:
    try:
        calibration = _calibration(tuple(cal_choice), db_url)
    except (ValueError, OSError, StoreError) as exc:
        st.warning(f"Not calibrated: {exc}. The reference fit is used.")
r, plan, points, pf = _analyse(inp, rin, input_tokens, output_tokens, free_gib, calibration)
g, tp = inp.gpu, inp.tensor_parallel_size

if r.weights_gib > ABSURD_FACTOR * r.total_gib:
    st.error(f"**{arch.name}** needs {gib_text(r.weights_gib)} of weights per GPU, more than {ABSURD_FACTOR:,} "
             f"times a {g.name}'s {gib_text(r.total_gib)}: no deployment holds this. Check the config.json "
             f"(hidden_size {arch.hidden_size:,}, {arch.layers:,} layers, vocab {arch.vocab_size:,}).")
    st.stop()

headline = f"**{arch.name}** on {tp} x {g.name}, {inp.weight_dtype} weights, KV {inp.kv_cache_dtype}: "
with st.container(key="cap_verdict"):
    if plan.will_not_start:
        st.error(headline + f"will not start: {plan.will_not_start}")
    else:
        show = {"fits": st.success, "short-context": st.warning, "does-not-fit": st.error}[r.verdict]
        show(headline + {"fits": "fits", "short-context": "fits with a short context only",
                         "does-not-fit": f"vLLM refuses utilization {r.gpu_memory_utilization:g} at startup; the "
                                         "launch plan below lowers it"}[r.verdict])
fixes = r.fixes or plan.fixes
if fixes:
    st.markdown("**What would fit** (click to apply):")
    for i, fix in enumerate(fixes):
        what, gives = capacity_view.split_fix(fix)
        changes = capacity_view.fix_changes(fix)
        cols = st.columns([2, 3])
        if changes:
            cols[0].button(what, key=f"cap_fix_{i}", on_click=_apply,
                           args=(capacity_view.fix_widget_values(changes),), use_container_width=True)
        else:
            cols[0].markdown(what)
        cols[1].caption(gives)

request_tokens = min(input_tokens + output_tokens, r.max_model_len)
kv_streams = kv_room_sequences(r.kv_capacity_tokens, request_tokens)
cols = st.columns(4)
cols[0].metric("Weights per GPU", gib_text(r.weights_gib))
cols[1].metric("KV cache per GPU", gib_text(r.kv_cache_gib))
cols[2].metric("KV capacity", f"{count_text(r.kv_capacity_tokens)} tokens")
cols[3].metric(f"Requests of {input_tokens:,} + {output_tokens:,} tokens at once", count_text(kv_streams),
               help=f"{r.max_concurrent_sequences:,.1f} sequences of the full {r.max_model_len:,} tokens")
with st.expander("How the memory is counted"):
    st.markdown("\n".join(f"- {line}" for line in r.reasons))

left, right = st.columns(2)
with left:
    st.subheader("Memory per GPU")
    parts = [("weights", r.weights_gib), ("activations", r.activation_gib), ("non-torch", r.non_torch_gib),
             ("KV cache", r.kv_cache_gib), ("headroom (1 - utilization)", max(r.total_gib - r.budget_gib, 0.0))]
    st.plotly_chart(figures.memory_figure(parts, r.total_gib, r.budget_gib), key="cap_chart_memory")
resident = max(1, min(int(used["concurrency"]), kv_streams or 1, plan.max_num_seqs or 1))
point = capacity_view.shape_estimate(rin, input_tokens, output_tokens, resident, calibration)
with right:
    st.subheader("Throughput for the scenario's requests")
    if plan.will_not_start or not r.kv_capacity_tokens:
        st.info("No throughput: this deployment does not start. Apply a fix above.")
    else:
        df = pd.DataFrame([{"concurrency": c, "estimate": p.output_tokens_per_s_est,
                            "ceiling": p.output_tokens_per_s_max, "per_stream": 1e3 / p.tpot_ms_est}
                           for c, p in zip(figures.CONCURRENCIES, points, strict=True)])
        st.plotly_chart(figures.throughput_figure(df, kv_streams, (resident, point.output_tokens_per_s_est)),
                        key="cap_chart_roofline")
        st.caption(f"Requests of {input_tokens:,} in + {output_tokens:,} out (the scenario's means), back to "
                   f"back, prefill included. TTFT of one prompt on an idle server >= {pf.ttft_ms_floor:,.0f} ms "
                   f"(~{pf.ttft_ms_est:,.0f} ms at {rin.mfu:.0%} MFU). vLLM runs at most "
                   f"{min(kv_streams, plan.max_num_seqs):,} of these at once (KV cache and --max-num-seqs); "
                   "more streams wait in its queue, so the curves stay flat past that.")
    if calibration is not None:
        with st.container(key="cap_calibration"):
            (st.warning if point.extrapolated else st.info)(
                f"Estimate {point.label}. Constants: MBU "
                f"{calibration.step_mbu:.2f}, per-step overhead {calibration.step_overhead_ms:.2f} ms, MFU "
                f"{calibration.step_mfu:.2f} (reference fit 0.79, 0.90 ms, 0.56).")
            with st.expander("The calibration's measured points against the calibrated estimate"):
                st.dataframe(capacity_view.calibration_frame(calibration), hide_index=True)

st.subheader("Use in the break-even")
if plan.will_not_start or not r.kv_capacity_tokens:
    st.write("Nothing to use: this deployment does not start.")
else:
    st.write(f"Estimate at {resident:,} concurrent streams of {input_tokens:,} + {output_tokens:,}-token requests: "
             f"**{point.output_tokens_per_s_est:,.0f} output tokens/s** per replica, TPOT "
             f"{point.tpot_ms_est:,.1f} ms (ceiling {point.output_tokens_per_s_max:,.0f} tok/s).")
if st.button("Use this estimate in the break-even", key="cap_use",
             disabled=bool(plan.will_not_start) or not r.kv_capacity_tokens):
    try:
        state.apply_operating_point(
            output_tokens_per_s=round(point.output_tokens_per_s_est, 1),
            source=f"roofline estimate ({arch.name}, {tp}x {g.id}, {inp.weight_dtype}, c={resident}, "
                   f"{input_tokens} in / {output_tokens} out, MBU {rin.mbu:.0%}, MFU {rin.mfu:.0%}"
                   + (f"; calibrated on {', '.join(calibration.fitted_on)}"
                      + (", extrapolated" if point.extrapolated else "") if calibration is not None else "") + ")",
            gpu=g.id,
            gpus_per_replica=tp,
            prefill_tokens_per_s=None,  # the estimate already includes each request's prefill
            context=ThroughputContext(g.id, arch.id[:200], inp.weight_dtype, float(input_tokens), float(output_tokens)),
        )
    except ValueError as exc:
        st.error(f"Not applied: {capacity_view.human_error(exc)}")
    else:
        st.success("Applied: the Break-even page now uses this throughput (marked as a roofline estimate, "
                   "prefill included) and this GPU at the scenario's GPU price tier.")
restson_view.deployment_note(state.get_scenario(), gpu=g.id, model=arch.id, dtype=inp.weight_dtype)

st.subheader("Launch plan")
st.caption(f"Free memory at start: {free_note if use_measured or measured is None else 'an idle GPU assumed'}.")
if plan.will_not_start:
    st.error(f"Will not start: {plan.will_not_start}. No command is given; apply a fix above.")
else:
    with st.container(key="cap_launch_plan"):  # tests find the one-GPU command here (the multi-node section has more)
        st.code(shlex.join(plan.vllm_serve_argv()), language="bash")
        st.code(shlex.join(plan.docker_argv()), language="bash")
        st.markdown("**Caps**\n" + "\n".join(f"- {c}" for c in plan.caps))
        st.dataframe(pd.DataFrame([{"flag": f.name, "value": f.value or "", "why": f.reason} for f in plan.flags]),
                     hide_index=True)
        for w in plan.warnings:
            st.warning(w)

multinode_view.render(inp)  # pipeline / data parallel over nodes: per-GPU memory per stage, Ray commands

st.subheader("The article's claims, checked")
st.caption(f"The claims of {ARTICLE} (the seed article of this project), each re-derived with arithmetic.")
for key, v in _claims().items():
    with st.expander(f"({key}) {v.claim.text} — {'possible' if v.possible else 'not possible'}"):
        st.markdown("\n".join(f"- {line}" for line in v.lines))
