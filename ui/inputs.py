"""The Break-even page's input widgets (keys prefixed ``be_``), kept in step with the shared scenario.

Widgets are keyed only (no ``value=``); their session-state values are (re)seeded from the scenario
whenever the scenario changed outside the widgets (page switch, example loaded, file uploaded, an
operating point applied from the Capacity or Probe page). Reading them back goes through
``calculators.scenario.replace_field``, which validates and names the field; a rejected value is
reported (naming the field by its label, ``LABELS``) and that field keeps its last good value, while the
other edits of the same rerun still apply.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import streamlit as st

from calculators import catalog
from calculators.scenario import LIMITS, Scenario, replace_field
from calculators.validation import relabel

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
    "gpu_select",
    "context_checkboxes",
    "read_widgets",
    "mark_synced",
]

CUSTOM = "custom"  # the API-model selectbox entry for typed-in prices
_SYNCED_KEY = "be_synced_scenario"


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
    "self_host.throughput_source": "Throughput source",
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

    Returns a note for each value the widgets cannot hold exactly (rounded or clamped).
    """
    if st.session_state.get(_SYNCED_KEY) == s:
        return []
    notes = []
    for spec in _NUMBERS:
        v, clamped = _widget_value(spec, get_path(s, spec.path))
        st.session_state[spec.key] = v
        if clamped:
            notes.append(
                f"{spec.label} = {get_path(s, spec.path)!r} does not fit this input "
                f"({'whole numbers ' if spec.integer else ''}{spec.min_value:g} to {spec.max_value:g}); "
                f"it is shown, and will be used, as {v}"
            )
    for key, path, _label in CONTEXT:
        st.session_state[key] = bool(get_path(s, path))
    st.session_state["be_api_model"] = s.api.model or CUSTOM
    st.session_state["be_gpu"] = s.self_host.gpu
    st.session_state[_SYNCED_KEY] = s
    return notes


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
        )


def _fill_api_prices() -> None:
    model_id = st.session_state.get("be_api_model")
    if model_id and model_id != CUSTOM:
        m = catalog.api_model(model_id)
        st.session_state["be_input_usd_per_mtok"] = m.input_usd_per_mtok
        st.session_state["be_cached_input_usd_per_mtok"] = m.cached_input_usd_per_mtok
        st.session_state["be_output_usd_per_mtok"] = m.output_usd_per_mtok


def api_model_select() -> None:
    """API model preset: choosing one fills the three prices, which stay editable."""
    models = catalog.api_models()
    options = [CUSTOM, *models]
    if st.session_state.get("be_api_model") not in options:
        options.append(st.session_state["be_api_model"])
    current = models.get(st.session_state["be_api_model"])
    st.selectbox(
        "API model",
        options,
        key="be_api_model",
        format_func=lambda i: "custom prices" if i == CUSTOM else (models[i].label if i in models else i),
        on_change=_fill_api_prices,
        help=None if current is None else f"Source: {current.source} ({current.as_of}). {current.notes}",
    )
    m = current
    if m is not None:
        flag = (
            "" if m.status in ("official", "transcribed") else f" ⚠️ {m.status}: check before relying on it."
        )
        edited = (
            st.session_state["be_input_usd_per_mtok"],
            st.session_state["be_cached_input_usd_per_mtok"],
            st.session_state["be_output_usd_per_mtok"],
        ) != (m.input_usd_per_mtok, m.cached_input_usd_per_mtok, m.output_usd_per_mtok)
        st.caption(
            f"Catalog ${m.input_usd_per_mtok:g} / ${m.cached_input_usd_per_mtok:g} / "
            f"${m.output_usd_per_mtok:g} per M (as of {m.as_of}).{flag}"
            + (" Prices below edited by you." if edited else "")
        )


def _fill_gpu_price() -> None:
    gpu_id = st.session_state.get("be_gpu")
    if gpu_id in catalog.gpus():
        st.session_state["be_gpu_usd_per_hour"] = catalog.gpu(gpu_id).usd_per_gpu_hour_low


def gpu_select() -> None:
    """GPU preset: choosing one fills $/GPU-hour with the catalog's low price; range and source shown."""
    table = catalog.gpus()
    options = list(table)
    if st.session_state.get("be_gpu") not in options:
        options.append(st.session_state["be_gpu"])
    current = table.get(st.session_state["be_gpu"])
    st.selectbox(
        "GPU",
        options,
        key="be_gpu",
        format_func=lambda i: table[i].name if i in table else f"{i} (not in catalog)",
        on_change=_fill_gpu_price,
        help=None if current is None else f"Source: {current.source}. {current.notes}",
    )
    g = current
    if g is not None:
        flags = f" ⚠️ estimated: {', '.join(g.estimate)}." if g.estimate else ""
        st.caption(
            f"Catalog ${g.usd_per_gpu_hour_low:.2f}–${g.usd_per_gpu_hour_high:.2f} per GPU-hour; "
            f"filled with the low price (as of {g.as_of}).{flags}"
        )


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
    changes: list[tuple[str, object]] = [(spec.path, st.session_state[spec.key]) for spec in _NUMBERS]
    changes += [(path, st.session_state[key]) for key, path, _label in CONTEXT]
    model = st.session_state["be_api_model"]
    changes.append(("api.model", None if model == CUSTOM else model))
    changes.append(("self_host.gpu", st.session_state["be_gpu"]))
    for path, value in changes:
        if value == get_path(new, path):
            continue
        try:
            new = replace_field(new, path, value)
        except ValueError as e:  # ScenarioError names the field: shown by its label, with the value kept
            kept = get_path(new, path)
            number = isinstance(kept, int | float) and not isinstance(kept, bool)
            errors.append(f"{human_error(e)} (kept at {kept:,g})" if number else human_error(e))
    if new.self_host.output_tokens_per_s != s.self_host.output_tokens_per_s:
        new = dataclasses.replace(
            new, self_host=dataclasses.replace(new.self_host, throughput_source="user input")
        )
    return new, errors


def mark_synced(s: Scenario) -> None:
    """Record that the widgets already show ``s`` (after the page stored what the widgets built)."""
    st.session_state[_SYNCED_KEY] = s
