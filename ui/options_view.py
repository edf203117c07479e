"""The Options page's parts: the options set in session state and the URL, the add/edit/remove forms, the
comparison table and chart, and the TOML download/upload.

State: ``session_state["opt_set"]`` holds a ``calculators.options.OptionsSet``, seeded once per session from
the URL (``o1_name`` …, ``options_from_query_params``); its traffic is always the app's scenario's (edit it on
Break-even), and every change writes the option keys (``o{i}_*``, ``opts_*``) back to the URL, so the address
bar is the share link. Widget keys start with ``opt_``. A rejected edit shows one line naming the field and the
option keeps its last good values.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Mapping

import pandas as pd
import streamlit as st

from calculators import catalog, figures, gpuprices, modelspec, ownership
from calculators import options as opts
from calculators.memory import WEIGHT_DTYPES
from calculators.provenance import TYPED_SOURCE, pct_text, reestimate, throughput_kind, usd
from calculators.scenario import (
    OWNED_TIER,
    TYPED_TIER,
    Scenario,
    SelfHost,
    apply_api_model,
    apply_gpu,
    apply_gpu_tier,
    replace_field,
)
from ui import state

__all__ = ["SET_KEY", "get_set", "set_set", "add_form", "edit_forms", "comparison", "files", "share_link",
           "display_frame"]

SET_KEY = "opt_set"
_PROBLEMS_KEY = "opt_url_problems"
_WRITTEN_KEY = "opt_url_written"
_MESSAGE_KEY = "opt_message"
_UPLOAD_SEEN = "opt_upload_seen"
_OPTION_PARAM = re.compile(r"^(o\d+_.+|opts_name|opts_desc)$")
_KIND_LABELS = {"self_host": "Self-host (GPUs)", "api": "API only"}
_SOURCES = {"typed": "typed", "estimate": "estimate (closed-loop roofline for this GPU, model and dtype)"}


def _with_traffic(oset: opts.OptionsSet, s: Scenario) -> opts.OptionsSet:
    return oset if oset.traffic == s.traffic else dataclasses.replace(oset, traffic=s.traffic)


def get_set() -> opts.OptionsSet:
    """The session's options set over the scenario's traffic (seeded from the URL on first use)."""
    scenario = state.get_scenario()
    if SET_KEY not in st.session_state:
        found, problems = opts.options_from_query_params({k: st.query_params[k] for k in st.query_params})
        st.session_state[SET_KEY] = found or opts.OptionsSet(traffic=scenario.traffic)
        st.session_state[_PROBLEMS_KEY] = problems
    oset = _with_traffic(st.session_state[SET_KEY], scenario)
    set_set(oset)
    return oset


def set_set(oset: opts.OptionsSet) -> None:
    """Store the set and write its option keys to the URL (stale option keys removed; traffic is the scenario's)."""
    st.session_state[SET_KEY] = oset
    params = {k: v for k, v in opts.options_to_query_params(oset).items() if _OPTION_PARAM.match(k)}
    for key in [k for k in st.query_params if _OPTION_PARAM.match(k) and k not in params]:
        del st.query_params[key]
    changed = {k: v for k, v in params.items() if st.query_params.get(k) != v}
    if changed:
        st.query_params.update(changed)


def show_messages() -> None:
    for p in st.session_state.pop(_PROBLEMS_KEY, []) or []:
        st.warning(f"From the link: {p}")
    msg = st.session_state.pop(_MESSAGE_KEY, None)
    if msg:
        (st.success if msg[0] == "ok" else st.error)(msg[1])


def _say(ok: bool, text: str) -> None:
    st.session_state[_MESSAGE_KEY] = ("ok" if ok else "error", text)


def _next_name(oset: opts.OptionsSet) -> str:
    n = len(oset.options) + 1
    while f"Option {n}" in oset.names():
        n += 1
    return f"Option {n}"


def add_form(oset: opts.OptionsSet) -> None:
    """Add an option: a copy of the current scenario (self-host) or its API alone."""
    full = len(oset.options) >= opts.MAX_OPTIONS
    with st.form("opt_add_form", clear_on_submit=True):
        st.markdown("**Add an option** from the current scenario (edit it below)")
        name = st.text_input("Name", key="opt_add_name", placeholder=_next_name(oset),
                             max_chars=opts.MAX_NAME_CHARS)
        kind = st.radio("Kind", list(_KIND_LABELS), format_func=_KIND_LABELS.get, key="opt_add_kind",
                        horizontal=True)
        clicked = st.form_submit_button("Add option", disabled=full)
    if full:
        st.caption(f"At most {opts.MAX_OPTIONS} options.")
    if clicked:
        name = (name or "").strip() or _next_name(oset)
        try:
            set_set(opts.add_option(oset, opts.make_option(name, state.get_scenario(), kind)))
            _say(True, f"Added {name!r}.")
        except ValueError as e:
            _say(False, f"Not added: {e}")
        st.rerun()


def _key(name: str) -> str:
    return "opt_" + re.sub(r"\W", "_", name)[:40] + f"_{zlib.crc32(name.encode()):08x}"


def option_tiers(h: SelfHost) -> list[str]:
    """The price tiers an option's form offers: the GPU's rental tiers, typed, and owned where the catalog has a
    server price for the GPU (or the option is owned already: the form must never switch it away silently)."""
    tiers = [*gpuprices.tiers(h.gpu), TYPED_TIER]
    if h.gpu_price_tier == OWNED_TIER or ownership.server_price(h.gpu) is not None:
        tiers.append(OWNED_TIER)
    return tiers


def _apply_edit(o: opts.Option, v: Mapping[str, object]) -> Scenario:
    """The option's scenario with the form's values (ValueError naming the field when one is rejected)."""
    s = o.scenario
    if o.kind == "self_host":
        if v["gpu"] != s.self_host.gpu:
            s = apply_gpu(s, str(v["gpu"]))
        s = replace_field(s, "self_host.gpus_per_replica", int(v["gpr"]))  # type: ignore[call-overload]
        if v["tier"] == TYPED_TIER:
            s = replace_field(s, "self_host.gpu_usd_per_hour", float(v["price"]))  # type: ignore[arg-type]
        elif v["tier"] != s.self_host.gpu_price_tier or v["gpu"] != o.scenario.self_host.gpu:
            s = apply_gpu_tier(s, str(v["tier"]))
        if v["source"] == "estimate":
            s = reestimate(s, model=str(v["model"]), dtype=str(v["dtype"]))
        elif float(v["otps"]) != s.self_host.output_tokens_per_s:  # type: ignore[arg-type]
            s = replace_field(s, "self_host.output_tokens_per_s", float(v["otps"]))  # type: ignore[arg-type]
            s = replace_field(s, "self_host.throughput_source", TYPED_SOURCE)
    if v["api"] and v["api"] != s.api.model:
        s = apply_api_model(s, str(v["api"]))
    return s


def _summary(s: Scenario, kind: str = "self_host") -> str:
    """What an applied edit left: the deployment, its throughput and its monthly cost (one line).

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> _summary(DEFAULT_SCENARIO)  # doctest: +ELLIPSIS
    '1x NVIDIA H100 SXM 80GB, 3,400 output tok/s per replica (measured), $... per month self-hosted'
    >>> _summary(DEFAULT_SCENARIO, "api")  # doctest: +ELLIPSIS
    'API gpt-6-luna, $... per month'
    """
    from calculators import cost  # noqa: PLC0415

    if kind == "api":
        return f"API {s.api.model or 'typed prices'}, {usd(cost.evaluate(s).api.usd_per_month)} per month"
    h = s.self_host
    kind = throughput_kind(h.throughput_source)
    return (f"{h.gpus_per_replica}x {catalog.gpus()[h.gpu].name}, {h.output_tokens_per_s:,.0f} output tok/s per "
            f"replica ({'typed' if kind == 'assumption' else kind}), "
            f"{usd(cost.evaluate(s).self_host.usd_per_month)} per month self-hosted")


def _api_choices(current: str | None) -> list[str]:
    ids = [ov.id for ov in catalog.api_overlay().values() if ov.in_data and ov.check != "alias"]
    if current and current not in ids:
        ids.insert(0, current)
    return ids


def _edit_one(oset: opts.OptionsSet, o: opts.Option) -> None:
    k = _key(o.name)
    s, h = o.scenario, o.scenario.self_host
    with st.form(f"{k}_form"):
        v: dict[str, object] = {}
        if o.kind == "self_host":
            gpus = catalog.gpus()
            left, mid, right = st.columns(3)
            v["gpu"] = left.selectbox("GPU", list(gpus), index=list(gpus).index(h.gpu), key=f"{k}_gpu",
                                      format_func=lambda i: gpus[i].name)
            v["gpr"] = mid.number_input("GPUs per replica", 1, 64, h.gpus_per_replica, key=f"{k}_gpr")
            tiers = option_tiers(h)
            v["tier"] = right.selectbox("Price tier", tiers, key=f"{k}_tier",
                                        index=tiers.index(h.gpu_price_tier) if h.gpu_price_tier in tiers else 0,
                                        help="A tier's median of gpu_prices.csv for the GPU, typed below, or owned "
                                             "(bought servers: the Break-even page's buy inputs, energy included)")
            v["price"] = right.number_input("$/GPU-hour (typed tier)", 0.0, 1000.0, float(h.gpu_usd_per_hour),
                                            key=f"{k}_price", format="%.4g")
            kind = throughput_kind(h.throughput_source)
            v["source"] = left.radio("Throughput", list(_SOURCES), format_func=_SOURCES.get, key=f"{k}_src",
                                     index=1 if kind == "estimate" else 0)
            v["otps"] = left.number_input("Output tok/s per replica (typed)", 0.001, 1e7,
                                          float(h.output_tokens_per_s), key=f"{k}_otps", format="%.6g")
            left.caption(f"Now {kind if kind != 'assumption' else 'typed'}: {h.throughput_source[:160]}. "
                         "A measured or estimated value is kept unless you change the number or re-estimate.")
            models = list(modelspec.models())
            cur_model = h.throughput_model if h.throughput_model in models else models[0]
            v["model"] = mid.selectbox("Model (estimate)", models, index=models.index(cur_model), key=f"{k}_model")
            dtypes = list(WEIGHT_DTYPES)
            cur_dt = h.throughput_dtype if h.throughput_dtype in dtypes else "bf16"
            v["dtype"] = mid.selectbox("Weights dtype (estimate)", dtypes, index=dtypes.index(cur_dt),
                                       key=f"{k}_dtype")
        apis = _api_choices(s.api.model)
        label = "API model" if o.kind == "api" else "API it falls back to / breaks even against"
        v["api"] = st.selectbox(label, apis, index=apis.index(s.api.model) if s.api.model in apis else 0,
                                key=f"{k}_api") if apis else None
        save, remove = st.columns(2)
        saved = save.form_submit_button("Apply")
        removed = remove.form_submit_button("Remove option")
    if removed:
        set_set(opts.remove_option(oset, o.name))
        _say(True, f"Removed {o.name!r}.")
        st.rerun()
    if saved:
        try:
            new = _apply_edit(o, v)
            set_set(opts.replace_option(oset, o.name, dataclasses.replace(o, scenario=new)))
            _say(True, f"Applied to {o.name!r}: {_summary(new, o.kind)}.")
        except ValueError as e:
            _say(False, f"Not applied to {o.name!r}: {e}")
        st.rerun()


def edit_forms(oset: opts.OptionsSet) -> None:
    """One expander per option with its form (GPU, count, price tier, throughput typed or estimated, API)."""
    for o in oset.options:
        with st.expander(f"Edit: {o.name} ({_KIND_LABELS[o.kind]})"):
            _edit_one(oset, o)


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def _compare(oset: opts.OptionsSet) -> pd.DataFrame:
    return opts.compare_options(oset)


def _usd(v: object, *, cents: bool = False, missing: str = "—") -> str:
    """``provenance.usd`` for a table cell: ``missing`` for None/NaN."""
    if v is None or pd.isna(v):  # type: ignore[call-overload]
        return missing
    return usd(float(v), cents=cents)  # type: ignore[arg-type]


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The comparison as the page shows it: readable column names, money with its unit, shares in %, sources in
    words, "—" where a number does not apply (an API option's replicas) and "in $/M output" for a self-host
    $/M input without a prefill rate.

    >>> d = display_frame(opts.compare_options(opts.OptionsSet(traffic=opts.DEFAULT_SCENARIO.traffic,
    ...     options=(opts.make_option("A", opts.DEFAULT_SCENARIO),))))
    >>> d.iloc[0][["$/month", "$/M input", "$/M output", "Replicas", "Utilization"]].tolist()
    ['$5,312', 'in $/M output', '$29.11', '1', '2%']
    """
    tp, inputs = [], []
    for kind, run, usd_in, stale in zip(df["throughput_kind"], df["run_id"], df["usd_per_m_input"],
                                        df["throughput_stale"], strict=True):
        text = kind if isinstance(kind, str) else "—"
        if isinstance(run, str) and run:
            text += f" (run {run})"
        if isinstance(stale, str) and stale:
            text += f" ⚠️ stale: {stale}"
        tp.append(text)
        inputs.append(_usd(usd_in, cents=True, missing="in $/M output" if isinstance(kind, str) else "—"))
    return pd.DataFrame({
        "Option": df["option"], "Deployment": df["deployment"],
        "$/month": [_usd(v) for v in df["monthly_usd"]], "$/M input": inputs,
        "$/M output": [_usd(v, cents=True) for v in df["usd_per_m_output"]],
        "Replicas": ["—" if pd.isna(v) else f"{int(v):,}" for v in df["replicas"]],
        "Utilization": ["—" if pd.isna(v) else pct_text(float(v)) for v in df["utilization"]],
        "Latency at SLO": [v if isinstance(v, str) else "—" for v in df["latency_at_slo"]],
        "Throughput tok/s": ["—" if pd.isna(v) else f"{float(v):,.0f}" for v in df["throughput_tok_s"]],
        "Throughput from": tp,
        "GPU price from": [v if isinstance(v, str) else "—" for v in df["gpu_price_source"]],
        "API price from": df["api_price_source"],
    })


def comparison(oset: opts.OptionsSet) -> pd.DataFrame | None:
    """The table and the stacked cost chart (None when there is no option)."""
    if not oset.options:
        st.info("No options yet: add the current scenario as an option above, or upload an options file.")
        return None
    df = _compare(oset)
    st.dataframe(display_frame(df), hide_index=True, width="stretch", key="opt_table")
    st.caption("$/month: self-host = GPUs + ops + API fallback; API = the API bill. Self-host $/M splits the bill "
               "by replica time (prefill vs decode); without a prefill rate the whole bill is in $/M output. "
               "Latency at SLO: the latency measured at the option's operating point and the SLO targets it met "
               "(a point used from the Results page); — for a typed or estimated throughput.")
    st.plotly_chart(figures.options_cost_figure(df), key="opt_chart")
    return df


def share_link(oset: opts.OptionsSet) -> None:
    from urllib.parse import urlencode  # noqa: PLC0415

    st.caption("Share: the address bar holds these options and the traffic; or copy this query string.")
    st.code("?" + urlencode(opts.options_to_query_params(oset)), language=None)


def _on_upload() -> None:
    f = st.session_state.get("opt_upload")
    if f is None:
        return
    try:
        oset = opts.options_from_toml(f.getvalue(), what=f"options file {f.name!r}")
    except ValueError as e:
        _say(False, f"Not loaded: {e}")
        return
    s = state.get_scenario()
    state.set_scenario(dataclasses.replace(s, traffic=oset.traffic))
    set_set(oset)
    _say(True, f"Loaded {len(oset.options)} option(s) from {f.name}; the traffic is the file's now.")


def files(oset: opts.OptionsSet) -> None:
    """Download the set as one TOML file; upload one (it replaces the options and the traffic)."""
    left, right = st.columns(2)
    left.download_button("Download options (TOML)", opts.options_to_toml(oset), file_name="options.toml",
                         mime="application/toml", key="opt_download", disabled=not oset.options)
    right.file_uploader("Load options (TOML)", type=["toml"], key="opt_upload", on_change=_on_upload)
