"""The current scenario, shared by every page: one value in ``st.session_state``, mirrored in the URL.

- ``get_scenario()`` seeds ``session_state["scenario"]`` ONCE per session from ``st.query_params``
  (falling back to ``DEFAULT_SCENARIO`` field by field; the problems found are kept for
  ``url_problems()``), then re-writes the query params so that a page switch, which drops them, does
  not lose the shareable link.
- ``set_scenario(s)`` stores a new scenario and writes it to the URL.
- ``apply_operating_point(...)`` is the "use in break-even" button of the Capacity and Probe pages.

Only the scenario's own query keys are written or removed; other pages' params are left alone.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from calculators.provenance import ThroughputContext, with_context
from calculators.scenario import (
    DEFAULT_SCENARIO,
    Scenario,
    ScenarioError,
    apply_gpu,
    from_query_params,
    replace_field,
    to_query_params,
)

__all__ = [
    "SCENARIO_KEY",
    "get_scenario",
    "set_scenario",
    "apply_operating_point",
    "url_problems",
    "pop_url_problems",
    "sync_query_params",
]

SCENARIO_KEY = "scenario"
_PROBLEMS_KEY = "scenario_url_problems"
_WRITTEN_KEY = "scenario_url_written"  # the params we last wrote, to drop stale keys


def _query_params_dict() -> dict[str, str]:
    return {k: st.query_params[k] for k in st.query_params}


def get_scenario() -> Scenario:
    """The session's scenario; on the first call of a session it is read from the URL.

    Bad URL values never raise: each is reported by ``url_problems()`` and its field keeps the default.
    """
    if SCENARIO_KEY not in st.session_state:
        scenario, problems = from_query_params(_query_params_dict(), base=DEFAULT_SCENARIO)
        st.session_state[SCENARIO_KEY] = scenario
        st.session_state[_PROBLEMS_KEY] = list(problems)
    scenario = st.session_state[SCENARIO_KEY]
    sync_query_params(scenario)
    return scenario


def set_scenario(s: Scenario) -> None:
    """Make ``s`` the session's scenario and write it to the URL."""
    if not isinstance(s, Scenario):
        raise TypeError(f"set_scenario expects a Scenario, got {type(s).__name__}")
    st.session_state[SCENARIO_KEY] = s
    sync_query_params(s)


def sync_query_params(s: Scenario) -> None:
    """Write ``s`` into ``st.query_params`` (only keys that changed; stale scenario keys are removed)."""
    params = to_query_params(s)
    current = _query_params_dict()
    for key in st.session_state.get(_WRITTEN_KEY, ()):
        if key not in params and key in current:
            del st.query_params[key]
    changed = {k: v for k, v in params.items() if current.get(k) != v}
    if changed:
        st.query_params.update(changed)
    st.session_state[_WRITTEN_KEY] = tuple(params)


def url_problems() -> list[str]:
    """What was wrong with the URL this session was opened with (empty when it was fine)."""
    return list(st.session_state.get(_PROBLEMS_KEY, []))


def pop_url_problems() -> list[str]:
    """``url_problems()``, then forget them (so a warning is shown once, not on every rerun)."""
    problems = url_problems()
    st.session_state[_PROBLEMS_KEY] = []
    return problems


def apply_operating_point(
    *,
    output_tokens_per_s: float,
    source: str,
    gpu: str | None = None,
    gpus_per_replica: int | None = None,
    prefill_tokens_per_s: float | None = None,
    context: ThroughputContext | None = None,
) -> Scenario:
    """Put a measured or computed operating point into the scenario's self-host side, store it, return it.

    ``source`` becomes ``self_host.throughput_source`` (e.g. "probe run 2026-11-27 h100-sxm"), so the
    Break-even page can say where its throughput came from. ``None`` leaves a field unchanged, except
    ``prefill_tokens_per_s``, which is always set (``None`` means capacity is bounded by output tokens only).
    A different ``gpu`` also takes that GPU's price at the scenario's tier (``scenario.apply_gpu``), editable after.
    ``context`` records where the throughput was measured or estimated (GPU, model, dtype, request shape;
    ``calculators.provenance``); without it only the GPU is recorded (``gpu``, else none): the old point's
    context never stays attached to a new throughput.
    Raises ``ScenarioError`` naming the field when a value is rejected; the stored scenario is then unchanged.
    """
    if not isinstance(source, str) or not source.strip():
        raise ScenarioError("self_host.throughput_source must be a non-empty string")
    s = get_scenario()
    s = replace_field(s, "self_host.output_tokens_per_s", output_tokens_per_s)
    if gpu is not None and gpu != s.self_host.gpu:
        s = apply_gpu(s, gpu)  # another GPU: its catalog price too, never the old GPU's $/hour
    if gpus_per_replica is not None:
        s = replace_field(s, "self_host.gpus_per_replica", gpus_per_replica)
    s = replace_field(s, "self_host.prefill_tokens_per_s", prefill_tokens_per_s)
    s = dataclasses.replace(s, self_host=dataclasses.replace(s.self_host, throughput_source=source.strip()))
    s = with_context(s, context if context is not None else ThroughputContext(gpu=gpu or ""))
    set_scenario(s)
    return s
