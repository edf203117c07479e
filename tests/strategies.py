"""Shared Hypothesis strategies: valid calculator inputs within the documented limits, and bad values.

Valid values come from ``calculators.scenario.LIMITS`` so the strategies follow the limits when they change.

- ``field_values(dotted)``: valid values for one scenario field (e.g. ``"traffic.requests_per_day"``);
- ``traffics() apis() self_hosts() contexts() scenarios()``: valid dataclasses;
- ``bad_numbers(low, high)``: NaN, infinities, values outside [low, high], strings, bools and None;
- ``FUZZ``: the settings every fuzz test uses (100 examples, no deadline: CI has 2 cores; set
  ``FUZZ_EXAMPLES=5000`` for a deeper local run).
"""

from __future__ import annotations

import math
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from calculators import catalog
from calculators.scenario import LIMITS, ApiPricing, Context, Scenario, SelfHost, Traffic

__all__ = [
    "FUZZ",
    "finite",
    "field_values",
    "bad_numbers",
    "traffics",
    "apis",
    "self_hosts",
    "contexts",
    "scenarios",
]

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def finite(low: float, high: float) -> st.SearchStrategy[float]:
    """Finite floats in [low, high], with the bounds and round numbers likely."""
    return st.one_of(
        st.sampled_from([low, high]),
        st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False),
        st.integers(min_value=math.ceil(low), max_value=math.floor(min(high, 1e6))).map(float)
        if math.ceil(low) <= math.floor(min(high, 1e6)) else st.nothing(),
    )


def field_values(dotted: str) -> st.SearchStrategy[float]:
    """Valid numbers for one numeric scenario field, from ``LIMITS``."""
    low, high = LIMITS[dotted]
    assert low is not None and high is not None, dotted
    if dotted.endswith(("gpus_per_replica", "min_replicas")):
        return st.integers(min_value=int(low), max_value=int(high))
    return finite(low, high)


def bad_numbers(low: float | None = None, high: float | None = None) -> st.SearchStrategy[object]:
    """Values a numeric field must reject: non-finite, out of [low, high], or not a number at all."""
    options: list[st.SearchStrategy[object]] = [
        st.sampled_from([math.nan, math.inf, -math.inf, "12", True, False, None]),
    ]
    if low is not None:
        below = st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False,
                          min_value=-1e300)
        options.append(below.filter(lambda v: v < low))
    if high is not None:
        options.append(st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False,
                                 max_value=1e300))
    return st.one_of(*options)


def traffics() -> st.SearchStrategy[Traffic]:
    f = "traffic."
    return st.builds(
        Traffic,
        requests_per_day=field_values(f + "requests_per_day"),
        input_tokens=field_values(f + "input_tokens"),
        output_tokens=field_values(f + "output_tokens"),
        cached_input_fraction=field_values(f + "cached_input_fraction"),
        peak_to_mean=field_values(f + "peak_to_mean"),
    )


def apis() -> st.SearchStrategy[ApiPricing]:
    f = "api."
    return st.builds(
        ApiPricing,
        input_usd_per_mtok=field_values(f + "input_usd_per_mtok"),
        cached_input_usd_per_mtok=field_values(f + "cached_input_usd_per_mtok"),
        output_usd_per_mtok=field_values(f + "output_usd_per_mtok"),
        model=st.none() | st.sampled_from(sorted(catalog.api_models())),
    )


def self_hosts() -> st.SearchStrategy[SelfHost]:
    f = "self_host."
    return st.builds(
        SelfHost,
        gpu=st.sampled_from(sorted(catalog.gpus())),
        gpu_usd_per_hour=field_values(f + "gpu_usd_per_hour"),
        output_tokens_per_s=field_values(f + "output_tokens_per_s"),
        gpus_per_replica=field_values(f + "gpus_per_replica"),
        prefill_tokens_per_s=st.none() | field_values(f + "prefill_tokens_per_s"),
        min_replicas=field_values(f + "min_replicas"),
        ops_usd_per_month=field_values(f + "ops_usd_per_month"),
        fallback_fraction=field_values(f + "fallback_fraction"),
        throughput_source=st.text(max_size=40),
    )


def contexts() -> st.SearchStrategy[Context]:
    return st.builds(Context, st.booleans(), st.booleans(), st.booleans())


def scenarios() -> st.SearchStrategy[Scenario]:
    """Any valid Scenario, extreme corners included."""
    return st.builds(
        Scenario,
        traffic=traffics(),
        api=apis(),
        self_host=self_hosts(),
        context=contexts(),
        name=st.text(max_size=30),
        description=st.text(max_size=60),
    )
