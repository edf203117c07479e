"""The Break-even page's input widgets (keys prefixed ``be_``), kept in step with the shared scenario.

Widgets are keyed only (no ``value=``); their session-state values are (re)seeded from the scenario
whenever the scenario changed outside the widgets (page switch, example loaded, file uploaded, an
operating point applied from the Capacity or Probe page). The page never changes a loaded value: a widget
that shows a value rounded (a mean of 312.7 input tokens in a whole-number box) writes it back only once the
user edits that widget (the values each widget was seeded with are kept under ``be_seeded_values``). Reading them back goes through
``calculators.scenario.replace_field``, which validates and names the field; a rejected value is
reported (naming the field by its label, ``LABELS``) and that field keeps its last good value, while the
other edits of the same rerun still apply.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import streamlit as st

from calculators import apiprices, catalog, gpuprices, ownership
from calculators.scenario import (
    LIMITS,
    OWNED_TIER,
    TYPED_TIER,
    Scenario,
    apply_api_model,
    replace_field,
    reprice_api,
)
from calculators.validation import relabel
from ui.ownership_view import LABELS as _OWN_LABELS

__all__ = [
    "NumberSpec",
    "TRAFFIC",
    "API_PRICES",
    "SELF_HOST",
    "OPS",
    "CONTEXT",
    "CUSTOM",
    "LABELS",
    "human_error",
    "get_path",
    "seed_widgets",
    "number_inputs",
    "api_model_select",
    "api_prices_update",
    "api_prices_caption",
    "model_key",
    "gpu_select",
    "gpu_tier_select",
    "context_checkboxes",
    "read_widgets",
    "mark_synced",
]

CUSTOM = "custom"  # the API-model selectbox entry for typed-in prices
_SYNCED_KEY = "be_synced_scenario"
_SEEDED_KEY = "be_seeded_values"  # {widget key: the value it was seeded with, or last applied}
_TIER_KEY = "be_gpu_tier"
_UPDATE_MSGS_KEY = "be_prices_update_msgs"


@dataclass(frozen=True)
class NumberSpec:
    """One ``st.number_input`` bound to one scenario field (``path`` is "section.field")."""

    key: str
    path: str
    label: str
    min_value: float
    max_value: float
    step: float
    fmt: str | None = None
    integer: bool = False
    optional: bool = False  # None (an empty box) is allowed
    help: str | None = None


def _num(key: str, path: str, label: str, step: float, fmt: str | None = None, **kw: object) -> NumberSpec:
    """A spec whose range is the calculators' hard limit for ``path`` (``LIMITS``), lower bound floored."""
    low, high = LIMITS[path]
    return NumberSpec(
        key, path, label, math.floor(low or 0), high if high is not None else 1e12, step, fmt, **kw
    )  # type: ignore[arg-type]


TRAFFIC = (
    _num("be_requests_per_day", "traffic.requests_per_day", "Requests per day", 1000, integer=True),
    _num("be_input_tokens", "traffic.input_tokens", "Input tokens per request", 100, integer=True),
    _num("be_output_tokens", "traffic.output_tokens", "Output tokens per request", 50, integer=True),
    _num(
        "be_cached_input_fraction",
        "traffic.cached_input_fraction",
        "Cached share of input",
        0.05,
        "%.2f",
        help="share of input tokens billed at the cached rate (0 to 1)",
    ),
    _num(
        "be_peak_to_mean",
        "traffic.peak_to_mean",
        "Peak-to-mean traffic",
        0.1,
        "%.2f",
        help="capacity is sized for the peak: mean rate × this ratio",
    ),
)
API_PRICES = (
    _num("be_input_usd_per_mtok", "api.input_usd_per_mtok", "Input $/M tokens", 0.01, "%.3f"),
    _num(
        "be_cached_input_usd_per_mtok",
        "api.cached_input_usd_per_mtok",
        "Cached input $/M tokens",
        0.01,
        "%.3f",
    ),
    _num("be_output_usd_per_mtok", "api.output_usd_per_mtok", "Output $/M tokens", 0.01, "%.3f"),
    _num(
        "be_cache_write_usd_per_mtok",
        "api.cache_write_usd_per_mtok",
        "Cache write $/M tokens",
        0.01,
        "%.3f",
        optional=True,
        help="empty: cache writes are billed as input",
    ),
    _num(
        "be_cache_write_fraction",
        "api.cache_write_fraction",
        "Cache-write share of input",
        0.05,
        "%.2f",
        help="share of input tokens written to the vendor's prompt cache (billed at the cache-write rate)",
    ),
)
_API_PRICE_KEYS = (
    ("be_input_usd_per_mtok", "input_usd_per_mtok"),
    ("be_cached_input_usd_per_mtok", "cached_input_usd_per_mtok"),
    ("be_output_usd_per_mtok", "output_usd_per_mtok"),
    ("be_cache_write_usd_per_mtok", "cache_write_usd_per_mtok"),
)
SELF_HOST = (
    _num("be_gpu_usd_per_hour", "self_host.gpu_usd_per_hour", "$ per GPU-hour", 0.05, "%.2f"),
    _num("be_gpus_per_replica", "self_host.gpus_per_replica", "GPUs per replica", 1, integer=True),
    _num(
        "be_output_tokens_per_s",
        "self_host.output_tokens_per_s",
        "Output tokens/s per replica",
        100,
        "%.0f",
        help="at the chosen operating point (Capacity or Probe page)",
    ),
    _num(
        "be_prefill_tokens_per_s",
        "self_host.prefill_tokens_per_s",
        "Prefill tokens/s per replica",
        1000,
        "%.0f",
        optional=True,
        help="optional; empty means capacity is set by output tokens alone",
    ),
    _num(
        "be_slo_good_fraction",
        "self_host.slo_good_fraction",
        "Share of requests meeting the SLO",
        0.01,
        "%.4f",
        optional=True,
        help="optional (set by the Results page's SLO panel from a run's per-request records); when set, the "
             "cost of good tokens is shown",
    ),
)
OPS = (
    _num(
        "be_min_replicas",
        "self_host.min_replicas",
        "Minimum replicas",
        1,
        integer=True,
        help="kept running for redundancy whatever the traffic",
    ),
    _num("be_ops_usd_per_month", "self_host.ops_usd_per_month", "Ops $/month (people time)", 500, "%.0f"),
    _num(
        "be_fallback_fraction",
        "self_host.fallback_fraction",
        "Share of traffic sent to the API",
        0.05,
        "%.2f",
        help="fallback: this share is billed at API prices",
    ),
)
CONTEXT = (
    ("be_needs_frontier_quality", "context.needs_frontier_quality", "Needs frontier-model quality"),
    ("be_fine_tuned_model", "context.fine_tuned_model", "Runs a fine-tuned model"),
    ("be_has_gpu_expertise", "context.has_gpu_expertise", "Team has GPU serving expertise"),
)
_NUMBERS = TRAFFIC + API_PRICES + SELF_HOST + OPS
# A lower bound the calculators exclude (output_tokens > 0, throughput >= 0.001) can be typed in as 0:
# replace_field then rejects it with a message naming the field, and the page shows it by its label.
LABELS: dict[str, str] = {
    **{spec.path: spec.label for spec in _NUMBERS},
    **{path: label for _key, path, label in CONTEXT},
    "api.model": "API model",
    "self_host.gpu": "GPU",
    "self_host.gpu_price_tier": "GPU price tier",
    "self_host.throughput_source": "Throughput source",
    # where the throughput was measured or estimated (calculators.provenance; set by the "use" buttons)
    "self_host.throughput_gpu": "GPU the throughput was measured on",
    "self_host.throughput_model": "Model the throughput was measured with",
    "self_host.throughput_dtype": "Weight dtype the throughput was measured with",
    "self_host.throughput_input_tokens": "Input tokens the throughput was measured at",
    "self_host.throughput_output_tokens": "Output tokens the throughput was measured at",
    "self_host.throughput_latency": "Latency measured at the throughput's point",
    **_OWN_LABELS,  # buying servers (the "owned" tier's panel, ui.ownership_view)
}
"""Dotted scenario field -> the label of the widget that edits it (for error messages a person can act on)."""


def human_error(message: object) -> str:
    """A scenario error with the field named by its widget label (``calculators.validation.relabel``).

    >>> human_error("traffic.output_tokens must be >= 0.01, got 0")
    'Output tokens per request must be at least 0.01, got 0'
    """
    return relabel(str(message), LABELS)


def get_path(s: Scenario, path: str) -> object:
    """``s.<section>.<field>`` for ``path`` = "section.field"."""
    section, field = path.split(".")
    return getattr(getattr(s, section), field)


def _widget_value(spec: NumberSpec, v: object) -> tuple[float | int | None, bool]:
    """The scenario value as this widget holds it, and whether it had to change (clamped into the widget's
    range, or rounded for a whole-number input)."""
    if v is None:
        return (None, False) if spec.optional else (spec.min_value, True)
    x = float(v)  # type: ignore[arg-type]
    clamped = min(max(x, spec.min_value), spec.max_value)
    out = round(clamped) if spec.integer else clamped
    return out, out != x


def seed_widgets(s: Scenario) -> list[str]:
    """Put ``s`` into the widgets' session state when ``s`` changed outside them.

    Returns a note for each value the widgets cannot hold exactly (rounded or clamped) while the widget is
    unedited: the scenario keeps the exact value (``read_widgets`` skips unedited widgets).
    """
    if st.session_state.get(_SYNCED_KEY) != s:
        seeded = {}
        for spec in _NUMBERS:
            v, _changed = _widget_value(spec, get_path(s, spec.path))
            st.session_state[spec.key] = seeded[spec.key] = v
        for key, path, _label in CONTEXT:
            st.session_state[key] = bool(get_path(s, path))
        st.session_state["be_api_model"] = model_key(s)
        st.session_state["be_api_batch"] = s.api.batch
        st.session_state["be_gpu"] = s.self_host.gpu
        st.session_state[_TIER_KEY] = s.self_host.gpu_price_tier
        st.session_state[_SEEDED_KEY] = seeded
        st.session_state[_SYNCED_KEY] = s
    seeded = st.session_state.get(_SEEDED_KEY, {})
    notes = []
    for spec in _NUMBERS:
        exact = get_path(s, spec.path)
        shown = st.session_state.get(spec.key)
        if exact is None or shown is None or shown == exact or seeded.get(spec.key) != shown:
            continue
        notes.append(
            f"{spec.label} = {exact!r} is shown as {shown} (this input holds "
            f"{'whole numbers ' if spec.integer else ''}{spec.min_value:g} to {spec.max_value:g}); the "
            f"calculation keeps {exact!r} unless you edit this input"
        )
    return notes


def _mark_price_typed() -> None:
    """on_change of $/GPU-hour: a typed price is labelled typed (the tier box follows)."""
    st.session_state[_TIER_KEY] = TYPED_TIER


_ON_CHANGE = {"be_gpu_usd_per_hour": _mark_price_typed}


def number_inputs(specs: tuple[NumberSpec, ...]) -> None:
    """Render ``specs`` as number inputs in the current container."""
    for spec in specs:
        kind = int if spec.integer else float
        st.number_input(
            spec.label,
            min_value=kind(spec.min_value),
            max_value=kind(spec.max_value),
            step=kind(spec.step),
            format=spec.fmt,
            key=spec.key,
            help=spec.help,
            on_change=_ON_CHANGE.get(spec.key),
        )


def model_key(s: Scenario) -> str:
    """The picker's value for the scenario's API model: ``provider:model`` with a provider, else the id."""
    if s.api.model is None:
        return CUSTOM
    return f"{s.api.provider}:{s.api.model}" if s.api.provider else s.api.model


def _split(key: str) -> tuple[str | None, str]:
    """(model, provider) of a picker value (genai-prices model ids may contain ``/`` but not ``:`` first)."""
    if key == CUSTOM:
        return None, ""
    provider, sep, model = key.partition(":")
    if sep and provider in _providers():
        return model, provider
    return key, ""


@st.cache_data(ttl=3600, max_entries=4)
def _model_options(data_label: str) -> dict[str, str]:
    """Picker value -> label: our overlay's ids first (current ones, then retiring), then every model of the
    price data (``data_label`` keys the cache to the data in use)."""
    out: dict[str, str] = {}
    for ov in catalog.api_overlay().values():
        if ov.in_data and ov.check != "alias":
            flag = f" ⚠️ retires {ov.retires}" if ov.retires else ""
            out[ov.id] = f"★ {ov.provider} · {ov.model}{flag}"
    for e in apiprices.models():
        out.setdefault(e.key, e.label)
    return out


@st.cache_data(ttl=3600, max_entries=4)
def _providers_cached(data_label: str) -> frozenset[str]:
    return frozenset(e.provider_id for e in apiprices.models())


def _providers() -> frozenset[str]:
    return _providers_cached(apiprices.data_info().label)


def _prospective(s: Scenario) -> Scenario:
    """The scenario the API widgets (model, batch) ask for, prices taken from the price data."""
    model, provider = _split(st.session_state.get("be_api_model", CUSTOM))
    batch = bool(st.session_state.get("be_api_batch", False))
    if model is None:
        return replace_field(s, "api.model", None)
    if (model, provider) != (s.api.model, s.api.provider):
        return apply_api_model(s, model, provider, batch)
    if batch != s.api.batch:
        return reprice_api(replace_field(s, "api.batch", batch))
    return s


def _fill_api_prices() -> None:
    """on_change of the model picker and the batch box: show the prices the new choice brings."""
    from ui.state import SCENARIO_KEY  # noqa: PLC0415

    s = st.session_state.get(SCENARIO_KEY)
    if s is None:
        return
    try:
        new = _prospective(s)
    except ValueError:  # read_widgets reports it, naming api.model
        return
    for key, field in _API_PRICE_KEYS:
        st.session_state[key] = getattr(new.api, field)


def api_model_select() -> None:
    """API model picker over every model of the price data (type to search), a batch box, and a caption
    naming where the prices come from (genai-prices version and data date, or "typed")."""
    info = apiprices.data_info()
    options_map = _model_options(info.label)
    current = st.session_state.get("be_api_model", CUSTOM)
    options = [CUSTOM, *options_map]
    if current not in options_map and current != CUSTOM:
        options.append(current)
    st.selectbox(
        "API model",
        options,
        index=options.index(current),  # see gpu_tier_select: never fall back to "custom prices"
        key="be_api_model",
        format_func=lambda k: "custom prices" if k == CUSTOM else options_map.get(k, k),
        on_change=_fill_api_prices,
        help=f"{info.models:,} models from {info.providers} providers ({info.label}); type to search. "
        "★: our curated list (source checks, retirement dates in calculators/data/api_models.csv).",
    )
    st.checkbox("Batch API (offline jobs)", key="be_api_batch", on_change=_fill_api_prices,
                help="batch rates where the price data has them (about half price); an honest comparison "
                "for offline work")


def api_prices_caption(s: Scenario, rates: object | None = None) -> None:
    """Where the scenario's API prices come from, which rate applied and why, and retirement warnings."""
    if s.api.model is None:
        st.caption("API prices: typed by you.")
        return
    info = apiprices.data_info()
    typed = ", ".join(f.removesuffix("_usd_per_mtok") for f in s.api.typed)
    src = f"typed by you: {typed}" if typed else "none typed"
    st.caption(f"API prices from {info.label} ({src}).")
    for line in getattr(rates, "explanation", ()):
        (st.warning if line.startswith("Warning") else st.caption)(line)
    if info.note:
        st.caption(info.note)


def api_prices_update() -> Scenario | None:
    """The "Update prices" button: fetch the newest price data and return the scenario re-priced with it
    (None when not clicked or the fetch failed: offline, a warning says so and the data in use stays).
    What changed is kept in session state and shown on the next run (the page reruns to re-seed widgets)."""
    from ui.state import SCENARIO_KEY  # noqa: PLC0415

    for kind, text in st.session_state.pop(_UPDATE_MSGS_KEY, []):
        (st.success if kind == "success" else st.warning if kind == "warning" else st.caption)(text)
    if not st.button("Update prices", key="be_prices_update",
                     help="fetch the newest genai-prices data (online); offline the pinned data stays in use"):
        return None
    try:
        result = apiprices.update()
    except apiprices.PriceDataError as e:
        st.warning(f"{e}")
        return None
    _model_options.clear()
    _providers_cached.clear()
    changed = [c for c in result.changes if c.kind == "changed"]
    msgs = [("success", f"Prices updated ({result.info.label}): {len(changed)} changed, "
                        f"{sum(c.kind == 'added' for c in result.changes)} added, "
                        f"{sum(c.kind == 'removed' for c in result.changes)} removed.")]
    if changed:
        msgs.append(("caption", "; ".join(f"{c.key}: {c.detail}" for c in changed[:20])))
    st.session_state[_UPDATE_MSGS_KEY] = msgs
    s = st.session_state.get(SCENARIO_KEY)
    if s is None:
        return None
    try:
        return reprice_api(s)
    except ValueError as e:
        msgs.append(("warning", f"The scenario keeps its prices: {e}"))
        return s


def _fill_gpu_price() -> None:
    """on_change of the GPU: its price from the chosen tier (on-demand when typed or the GPU lacks the tier)."""
    gpu_id = st.session_state.get("be_gpu")
    if gpu_id in catalog.gpus():
        tier = st.session_state.get(_TIER_KEY)
        if tier == OWNED_TIER and ownership.server_price(gpu_id) is not None:
            return  # owning keeps its tier: the price is derived for the new GPU (ui.ownership_view)
        if tier not in gpuprices.tiers(gpu_id):
            tier = gpuprices.DEFAULT_TIER
        st.session_state[_TIER_KEY] = tier
        st.session_state["be_gpu_usd_per_hour"] = gpuprices.tier_usd_per_hour(gpu_id, tier)


def _fill_tier_price() -> None:
    """on_change of the tier: the GPU's median $/GPU-hour of that tier ("typed" keeps the price)."""
    gpu_id, tier = st.session_state.get("be_gpu"), st.session_state.get(_TIER_KEY)
    if gpu_id in catalog.gpus() and tier in gpuprices.tiers(gpu_id):
        st.session_state["be_gpu_usd_per_hour"] = gpuprices.tier_usd_per_hour(gpu_id, tier)


def _tier_label(gpu_id: str, tier: str) -> str:
    if tier == TYPED_TIER:
        return "typed (your $/GPU-hour)"
    if tier == OWNED_TIER:
        return "owned (buy): $/GPU-hour derived from the server's price, energy, hosting and people"
    if tier not in gpuprices.tiers(gpu_id):
        return f"{tier} (no such row for this GPU)"
    return f"{tier}: ${gpuprices.tier_usd_per_hour(gpu_id, tier):.2f}/h ({gpuprices.tier_statistic(gpu_id, tier)})"


def gpu_tier_select() -> None:
    """The GPU price tier (``self_host.gpu_price_tier``): choosing one fills $/GPU-hour with the median of
    the GPU's rows of that tier; typing a price switches it to "typed". A caption says which applies."""
    gpu_id = st.session_state.get("be_gpu", "")
    options = [*gpuprices.tiers(gpu_id), TYPED_TIER, OWNED_TIER]
    current = st.session_state.get(_TIER_KEY, gpuprices.DEFAULT_TIER)
    if current not in options:
        options.append(current)
    # index = the current tier, not 0: when a click interrupts the rerun an edit started, the browser
    # can send this box back at its default index (streamlit/streamlit#11204); index 0 is "spot", which silently
    # re-priced the GPU (seen in the uncertainty browser test, 3 of 6 tries). The session state still decides
    # the value; the index only makes the fallback harmless.
    st.selectbox(
        "GPU price tier", options, index=options.index(current), key=_TIER_KEY,
        format_func=lambda t: _tier_label(gpu_id, t),
        on_change=_fill_tier_price,
        help="on-demand is the like-for-like with a pay-as-you-go API; spot and community can be preempted "
        "or lack an SLA, reserved tiers need a 1- or 3-year commitment (calculators/data/gpu_prices.csv)")
    price = st.session_state.get("be_gpu_usd_per_hour")
    if current == TYPED_TIER:
        st.caption(f"GPU price: ${price:g}/GPU-hour, **typed** by you (not a catalog tier).")
    elif current == OWNED_TIER:
        st.caption(f"GPU price: ${price:g}/GPU-hour, **derived** from owning servers (inputs and monthly "
                   "breakdown in the \"Buying instead of renting\" panel).")
    elif current in gpuprices.tiers(gpu_id):
        st.caption(f"GPU price tier: **{current}**, ${price:g}/GPU-hour = the median of the {current} rows.")


def gpu_select() -> None:
    """GPU preset: choosing one fills $/GPU-hour from the chosen price tier (on-demand by default); tiers shown."""
    table = catalog.gpus()
    options = list(table)
    if st.session_state.get("be_gpu") not in options:
        options.append(st.session_state["be_gpu"])
    current = table.get(st.session_state["be_gpu"])
    rows = gpuprices.prices(current.id) if current is not None else []
    st.selectbox(
        "GPU",
        options,
        index=options.index(st.session_state["be_gpu"]),  # see gpu_tier_select: never fall back to the first GPU
        key="be_gpu",
        format_func=lambda i: table[i].name if i in table else f"{i} (not in catalog)",
        on_change=_fill_gpu_price,
        help=None if current is None else "Prices by provider and tier:\n\n" + "\n\n".join(
            f"- {r.label} ({r.source})" for r in rows),
    )
    g = current
    if g is not None:
        flags = f" ⚠️ estimated: {', '.join(g.estimate)}." if g.estimate else ""
        cheaper = [r for r in rows if r.tier != gpuprices.DEFAULT_TIER]
        others = "; ".join(f"{r.tier} {r.provider} ${r.usd_per_gpu_hour:g}" for r in cheaper[:4])
        st.caption(
            f"Default: on-demand, ${gpuprices.default_usd_per_hour(g.id):.2f}/GPU-hour = the "
            f"{gpuprices.DEFAULT_STATISTIC} (on-demand ${g.usd_per_gpu_hour_low:.2f}–"
            f"${g.usd_per_gpu_hour_high:.2f}; {g.as_of}).{flags}" + (f" Other tiers: {others}." if others else "")
        )
    gpu_tier_select()


def context_checkboxes() -> None:
    """The considerations behind the verdict's reasons (not part of the cost math)."""
    for key, _path, label in CONTEXT:
        st.checkbox(label, key=key)


def read_widgets(s: Scenario) -> tuple[Scenario, list[str]]:
    """``s`` with every valid widget value that differs from it applied; the errors of the values rejected.

    A rejected value leaves its field at its value in ``s`` (the last good one) and is reported naming the
    widget's label and that kept value; the other edits still apply. A typed-in throughput sets
    ``throughput_source`` to "user input".
    """
    new, errors = s, []
    try:  # the model picker and batch box first: they bring the price data's prices (untyped)
        new = _prospective(s)
    except ValueError as e:
        errors.append(str(e))
    changes: list[tuple[str, object]] = [(spec.path, st.session_state[spec.key]) for spec in _NUMBERS]
    changes += [(path, st.session_state[key]) for key, path, _label in CONTEXT]
    changes.append(("self_host.gpu", st.session_state["be_gpu"]))
    changes.append(("self_host.gpu_price_tier", st.session_state.get(_TIER_KEY, s.self_host.gpu_price_tier)))
    seeded = st.session_state.get(_SEEDED_KEY, {})
    unedited = {spec.path for spec in _NUMBERS
                if spec.key in seeded and st.session_state[spec.key] == seeded[spec.key]}
    for path, value in changes:
        if path in unedited or value == get_path(new, path):
            continue  # an unedited widget never rewrites the scenario (a rounded 312.7 stays 312.7)
        try:
            new = replace_field(new, path, value)
        except ValueError as e:  # ScenarioError names the field: shown by its label, with the value kept
            kept = get_path(new, path)
            number = isinstance(kept, int | float) and not isinstance(kept, bool)
            errors.append(f"{human_error(e)} (kept at {kept:,g})" if number else human_error(e))
    if new.self_host.output_tokens_per_s != s.self_host.output_tokens_per_s:
        new = dataclasses.replace(
            new, self_host=dataclasses.replace(new.self_host, throughput_source="user input", throughput_latency="")
        )
    return new, errors


def mark_synced(s: Scenario) -> None:
    """Record that the widgets already show ``s`` (after the page stored what the widgets built): the widgets'
    current values become the reference for "edited" (an edit back to a rounded value is then an edit)."""
    st.session_state[_SYNCED_KEY] = s
    seeded = st.session_state.get(_SEEDED_KEY)
    if seeded is not None:
        for key in seeded:
            if key in st.session_state:
                seeded[key] = st.session_state[key]
