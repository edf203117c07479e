"""Shared Hypothesis strategies: valid calculator inputs within the documented limits, and bad values.

Valid values come from ``calculators.scenario.LIMITS`` so the strategies follow the limits when they change.

- ``field_values(dotted)``: valid values for one scenario field (e.g. ``"traffic.requests_per_day"``);
- ``traffics() apis() self_hosts() contexts() scenarios()``: valid dataclasses;
- ``bad_numbers(low, high)``: NaN, infinities, values outside [low, high], strings, bools and None;
- ``FUZZ``: the settings every fuzz test uses; the profile (deadline off, deterministic in CI) comes from
  ``tests/conftest.py``; set ``FUZZ_EXAMPLES=5000`` for a deeper local run.

Magnitudes. By default a drawn number is 0 or at least ``TINY = 1e-9`` in size: below that, the products
the cost model forms (price x tokens / 1e6 x hours) fall into subnormal floats (5e-324 carries one
significant bit), where no relative tolerance holds and no user lives ($5e-324 per GPU-hour once made the
break-even property test fail 1 run in 90). ``tiny=True`` keeps the subnormal corners, for the tests that
only ask "valid input never raises and gives a finite, non-negative result".
"""

from __future__ import annotations

import math
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from calculators import catalog
from calculators.scenario import GPU_PRICE_TIERS, LIMITS, ApiPricing, Context, Scenario, SelfHost, Traffic

__all__ = [
    "FUZZ",
    "TINY",
    "finite",
    "field_values",
    "bad_numbers",
    "traffics",
    "apis",
    "self_hosts",
    "contexts",
    "scenarios",
]

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
                suppress_health_check=[HealthCheck.too_slow])
TINY = 1e-9


def finite(low: float, high: float, *, tiny: bool = False) -> st.SearchStrategy[float]:
    """Finite floats in [low, high], with the bounds and round numbers likely; 0 or >= ``TINY`` in size
    unless ``tiny``."""
    floats = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    if not tiny:
        floats = floats.filter(lambda v: v == 0 or abs(v) >= TINY)
    return st.one_of(
        st.sampled_from([low, high]),
        floats,
        st.integers(min_value=math.ceil(low), max_value=math.floor(min(high, 1e6))).map(float)
        if math.ceil(low) <= math.floor(min(high, 1e6)) else st.nothing(),
    )


def field_values(dotted: str, *, tiny: bool = False) -> st.SearchStrategy[float]:
    """Valid numbers for one numeric scenario field, from ``LIMITS`` (``tiny``: see ``finite``)."""
    low, high = LIMITS[dotted]
    assert low is not None and high is not None, dotted
    if dotted.endswith(("gpus_per_replica", "min_replicas")):
        return st.integers(min_value=int(low), max_value=int(high))
    return finite(low, high, tiny=tiny)


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


def _fields(tiny: bool):
    return lambda dotted: field_values(dotted, tiny=tiny)


def traffics(*, tiny: bool = False) -> st.SearchStrategy[Traffic]:
    f, fv = "traffic.", _fields(tiny)
    return st.builds(
        Traffic,
        requests_per_day=fv(f + "requests_per_day"),
        input_tokens=fv(f + "input_tokens"),
        output_tokens=fv(f + "output_tokens"),
        cached_input_fraction=fv(f + "cached_input_fraction"),
        peak_to_mean=fv(f + "peak_to_mean"),
    )


def apis(*, tiny: bool = False) -> st.SearchStrategy[ApiPricing]:
    f, fv = "api.", _fields(tiny)
    return st.builds(
        ApiPricing,
        input_usd_per_mtok=fv(f + "input_usd_per_mtok"),
        cached_input_usd_per_mtok=fv(f + "cached_input_usd_per_mtok"),
        output_usd_per_mtok=fv(f + "output_usd_per_mtok"),
        model=st.none() | st.sampled_from(sorted(k for k, v in catalog.api_overlay().items() if v.in_data)),
        provider=st.sampled_from(["", "openai", "anthropic"]),
        batch=st.booleans(),
        cache_write_usd_per_mtok=st.none() | fv(f + "cache_write_usd_per_mtok"),
    )


def self_hosts(*, tiny: bool = False) -> st.SearchStrategy[SelfHost]:
    f, fv = "self_host.", _fields(tiny)
    return st.builds(
        SelfHost,
        gpu=st.sampled_from(sorted(catalog.gpus())),
        gpu_usd_per_hour=fv(f + "gpu_usd_per_hour"),
        output_tokens_per_s=fv(f + "output_tokens_per_s"),
        gpus_per_replica=fv(f + "gpus_per_replica"),
        prefill_tokens_per_s=st.none() | fv(f + "prefill_tokens_per_s"),
        slo_good_fraction=st.none() | fv(f + "slo_good_fraction"),
        min_replicas=fv(f + "min_replicas"),
        ops_usd_per_month=fv(f + "ops_usd_per_month"),
        fallback_fraction=fv(f + "fallback_fraction"),
        throughput_source=st.text(max_size=40),
        gpu_price_tier=st.sampled_from(GPU_PRICE_TIERS),
        # owning ("owned" tier): a server price for every GPU (gpu_servers.csv lacks most), bounded so the
        # derived $/GPU-hour stays under its 1000 limit at any amortization period
        own_server_usd=st.floats(0, 2e6, allow_nan=False, allow_infinity=False),
        own_months=fv(f + "own_months"),
        own_power_w=st.none() | st.floats(0, 2000, allow_nan=False, allow_infinity=False),
        own_power_kind=st.sampled_from(["", "typed", "measured: run 3 at concurrency 32"]),
    )


def contexts() -> st.SearchStrategy[Context]:
    return st.builds(Context, st.booleans(), st.booleans(), st.booleans())


def scenarios(*, tiny: bool = False) -> st.SearchStrategy[Scenario]:
    """Any valid Scenario, extreme corners included (subnormal ones only with ``tiny``)."""
    return st.builds(
        Scenario,
        traffic=traffics(tiny=tiny),
        api=apis(tiny=tiny),
        self_host=self_hosts(tiny=tiny),
        context=contexts(),
        name=st.text(max_size=30),
        description=st.text(max_size=60),
    )
