"""A scenario: traffic, API prices, the self-host set-up and context flags, as frozen dataclasses.

One table (``_SPECS``) states every field's type, limits and URL key; the dataclasses validate themselves
against it in ``__post_init__``, so every ``Scenario`` that exists is valid. Errors are ``ScenarioError``
(a ``ValueError``) whose message names the field with its section, e.g.
``traffic.requests_per_day must be >= 0, got -5``.

Hard limits (beyond them a value is a typo, not a plan): requests_per_day <= 1e10; tokens per request
<= 10,000,000 (output_tokens >= 0.01: a mean, but never zero); prices <= $1,000 per M tokens; gpu_usd_per_hour <= $1,000;
output_tokens_per_s and prefill_tokens_per_s in [0.001, 1e7] and [0.001, 1e8]; peak_to_mean in [1, 100];
gpus_per_replica 1..64; min_replicas 1..1000; ops_usd_per_month <= 1e9; fractions in [0, 1].

Scenario files are untrusted input: at most 256 KiB (``MAX_SCENARIO_BYTES``; the examples are under 2 KB),
UTF-8 with or without a byte-order mark, tables/arrays nested at most 32 deep, integers within 64 bits
(TOML's own range); each failure is one ScenarioError line (see ``calculators.filelimits``).

Scenario files are TOML with sections ``[traffic] [api] [self_host] [context]`` (see ``scenario_from_dict``);
the URL form is a flat dict of short keys (``to_query_params``).

>>> s = loads_toml('''
... [traffic]
... requests_per_day = 1000
... input_tokens = 500
... output_tokens = 200
... [api]
... model = "gpt-6-luna"
... [self_host]
... gpu = "l40s"
... output_tokens_per_s = 900
... ''')
>>> s.api.output_usd_per_mtok, s.self_host.gpu_usd_per_hour, s.traffic.peak_to_mean
(0.5, 1.55, 2.0)
>>> loads_toml(dumps_toml(s)) == s
True
>>> replace_field(s, "traffic.requests_per_day", -5)
Traceback (most recent call last):
...
calculators.scenario.ScenarioError: traffic.requests_per_day must be >= 0, got -5
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import tomli_w

from calculators import catalog, gpuprices, ownership, tomlcomments
from calculators.filelimits import (
    MAX_DEPTH,
    MAX_SCENARIO_BYTES,
    FileLimitError,
    check_size,
    check_tree,
    decode_text,
    read_limited,
    short,
)
from calculators.validation import require_finite, require_int

__all__ = [
    "Traffic",
    "ApiPricing",
    "SelfHost",
    "Context",
    "Scenario",
    "ScenarioError",
    "LIMITS",
    "DEFAULT_SCENARIO",
    "QUERY_KEYS",
    "scenario_from_dict",
    "scenario_to_dict",
    "loads_toml",
    "load_toml",
    "dumps_toml",
    "to_query_params",
    "from_query_params",
    "replace_field",
    "apply_api_model",
    "apply_gpu",
    "apply_gpu_tier",
    "GPU_PRICE_TIERS",
    "TYPED_TIER",
    "OWNED_TIER",
    "OWN_FIELDS",
    "buy_input",
    "for_new_gpu",
    "reprice_api",
    "PRICE_FIELDS",
]


class ScenarioError(ValueError):
    """A scenario value, key or file is invalid; the message names the field and what is allowed."""


class _Spec(NamedTuple):
    kind: str  # float | int | opt_float | bool | str | gpu | model
    qp: str  # the URL query-parameter key
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True


MAX_TOKENS = 10_000_000
TYPED_TIER = "typed"
OWNED_TIER = "owned"
GPU_PRICE_TIERS = (*gpuprices.TIERS, TYPED_TIER, OWNED_TIER)
"""``self_host.gpu_price_tier`` values: a tier of gpu_prices.csv (its median for the GPU), typed, or owned
(bought servers: the price is derived from the ``own_*`` fields by ``calculators.ownership``)."""
_D = ownership.DEFAULTS
_SPECS: dict[str, dict[str, _Spec]] = {
    "": {"name": _Spec("str", "name", high=200), "description": _Spec("str", "desc", high=2000)},
    "traffic": {
        "requests_per_day": _Spec("float", "rpd", 0, 1e10),
        "input_tokens": _Spec("float", "in", 0, MAX_TOKENS),
        "output_tokens": _Spec("float", "out", 0.01, MAX_TOKENS),
        "cached_input_fraction": _Spec("float", "cached", 0, 1),
        "peak_to_mean": _Spec("float", "peak", 1, 100),
        "input_tokens_p50": _Spec("opt_float", "in50", 0, MAX_TOKENS),
        "input_tokens_p90": _Spec("opt_float", "in90", 0, MAX_TOKENS),
        "input_tokens_p99": _Spec("opt_float", "in99", 0, MAX_TOKENS),
        "output_tokens_p50": _Spec("opt_float", "out50", 0, MAX_TOKENS),
        "output_tokens_p90": _Spec("opt_float", "out90", 0, MAX_TOKENS),
        "output_tokens_p99": _Spec("opt_float", "out99", 0, MAX_TOKENS),
        "trace_name": _Spec("str", "trace", high=200),
    },
    "api": {
        "model": _Spec("model", "api"),
        "provider": _Spec("str", "api_prov", high=100),
        "batch": _Spec("bool", "batch"),
        "input_usd_per_mtok": _Spec("float", "api_in", 0, 1000),
        "cached_input_usd_per_mtok": _Spec("float", "api_cached", 0, 1000),
        "output_usd_per_mtok": _Spec("float", "api_out", 0, 1000),
        "cache_write_usd_per_mtok": _Spec("opt_float", "api_cw", 0, 1000),
        "cache_write_fraction": _Spec("float", "cw", 0, 1),
    },
    "self_host": {
        "gpu": _Spec("gpu", "gpu"),
        "gpus_per_replica": _Spec("int", "gpr", 1, 64),
        "gpu_usd_per_hour": _Spec("float", "gpu_usd", 0, 1000),
        "output_tokens_per_s": _Spec("float", "otps", 0.001, 1e7),
        "prefill_tokens_per_s": _Spec("opt_float", "ptps", 0.001, 1e8),
        "min_replicas": _Spec("int", "minrep", 1, 1000),
        "ops_usd_per_month": _Spec("float", "ops", 0, 1e9),
        "fallback_fraction": _Spec("float", "fb", 0, 1),
        "throughput_source": _Spec("str", "src", high=200),
        "slo_good_fraction": _Spec("opt_float", "good", 0, 1),
        # where the throughput was measured or estimated ("" / None: not recorded); see calculators.provenance
        "throughput_gpu": _Spec("str", "tgpu", high=100),
        "throughput_model": _Spec("str", "tmodel", high=200),
        "throughput_dtype": _Spec("str", "tdtype", high=40),
        "throughput_input_tokens": _Spec("opt_float", "tin", 0, MAX_TOKENS),
        "throughput_output_tokens": _Spec("opt_float", "tout", 0, MAX_TOKENS),
        # the latency measured at the throughput's point ("TTFT p90 312 ms, TPOT p90 41 ms"; "": not measured)
        "throughput_latency": _Spec("str", "tlat", high=200),
        # buying servers instead of renting (used when gpu_price_tier = "owned"; calculators.ownership).
        # Before gpu_price_tier so that a URL sets them before it switches to owned.
        "own_server_usd": _Spec("opt_float", "own_usd", 0, 1e9),
        "own_gpus_per_server": _Spec("opt_float", "own_gps", 1, 64),
        "own_months": _Spec("float", "own_months", 1, 600),
        "own_residual": _Spec("float", "own_resid", 0, 1),
        "own_hosting_usd": _Spec("float", "own_host", 0, 1e8),
        "own_power_w": _Spec("opt_float", "own_w", 0, 1e5),
        "own_power_kind": _Spec("str", "own_wkind", high=200),
        "own_load_factor": _Spec("float", "own_load", 0, 1.5),
        "own_overhead_w": _Spec("opt_float", "own_ovh", 0, 1e6),
        "own_usd_per_kwh": _Spec("float", "own_kwh", 0, 100),
        "own_pue": _Spec("float", "own_pue", 1, 10),
        "own_people_usd": _Spec("float", "own_people", 0, 1e8),
        "gpu_price_tier": _Spec("tier", "gpu_tier"),
    },
    "context": {
        "needs_frontier_quality": _Spec("bool", "frontier"),
        "fine_tuned_model": _Spec("bool", "ft"),
        "has_gpu_expertise": _Spec("bool", "expert"),
    },
}
LIMITS: dict[str, tuple[float | None, float | None]] = {
    (f"{sec}.{key}" if sec else key): (spec.low, spec.high)
    for sec, fields in _SPECS.items()
    for key, spec in fields.items()
    if spec.kind in ("float", "int", "opt_float")
}
"""Hard limits (low, high), both inclusive, by dotted field name (None: no bound)."""
OWN_FIELDS = tuple(f"self_host.{k}" for k in _SPECS["self_host"] if k.startswith("own_"))
"""The dotted ``own_*`` fields (buying servers; they apply when ``self_host.gpu_price_tier`` is "owned")."""
QUERY_KEYS: dict[str, str] = {
    spec.qp: (f"{sec}.{key}" if sec else key) for sec, fields in _SPECS.items() for key, spec in fields.items()
}
"""URL key -> dotted field name, e.g. ``"rpd" -> "traffic.requests_per_day"``."""


def _check(path: str, spec: _Spec, value: object) -> Any:
    """Validate and normalise one value (ints to float for float fields); ScenarioError naming ``path``."""
    try:
        if spec.kind == "float":
            return require_finite(path, value, low=spec.low, high=spec.high, low_inclusive=spec.low_inclusive)
        if spec.kind == "opt_float":
            return None if value is None else require_finite(path, value, low=spec.low, high=spec.high)
        if spec.kind == "int":
            return require_int(path, value, low=int(spec.low or 0), high=int(spec.high or 0))
        if spec.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{path} must be true or false, got {value!r}")
            return value
        if spec.kind == "str":
            if not isinstance(value, str) or len(value) > (spec.high or 0):
                raise ValueError(f"{path} must be text of at most {spec.high:g} characters, got {value!r:.60}")
            return value
        if spec.kind == "tier":
            if value not in GPU_PRICE_TIERS:
                raise ValueError(f"{path} must be one of {', '.join(GPU_PRICE_TIERS)}, got {value!r:.60}")
            return value
        if spec.kind == "model" and value is None:
            return None
        if spec.kind == "model":  # resolved against the price data where prices are taken from it
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                raise ValueError(f"{path} must be a model id (text of 1 to 200 characters), got {value!r:.60}")
            return value
        if not isinstance(value, str):
            raise ValueError(f"{path} must be a catalog id (text), got {value!r}")
        catalog.gpu(value)
        return value
    except ScenarioError:
        raise
    except ValueError as e:
        msg = str(e)
        raise ScenarioError(msg if msg.startswith(path) else f"{path}: {msg}") from None


def _validate_section(obj: object, section: str) -> None:
    for key, spec in _SPECS[section].items():
        object.__setattr__(obj, key, _check(f"{section}.{key}" if section else key, spec, getattr(obj, key)))


@dataclass(frozen=True)
class Traffic:
    """Mean request shape and volume. ``cached_input_fraction``: share of input tokens billed at the cached
    rate (and, by assumption, skipped by the self-hosted prefix cache). Capacity is sized for
    ``requests_per_day * peak_to_mean``. The optional percentiles (``*_p50/p90/p99``) and ``trace_name``
    describe the shape behind the means when the traffic came from a trace (None / "": typed in)."""

    requests_per_day: float
    input_tokens: float
    output_tokens: float
    cached_input_fraction: float = 0.0
    peak_to_mean: float = 2.0
    input_tokens_p50: float | None = None
    input_tokens_p90: float | None = None
    input_tokens_p99: float | None = None
    output_tokens_p50: float | None = None
    output_tokens_p90: float | None = None
    output_tokens_p99: float | None = None
    trace_name: str = ""

    def __post_init__(self) -> None:
        _validate_section(self, "traffic")


PRICE_FIELDS = ("input_usd_per_mtok", "cached_input_usd_per_mtok", "output_usd_per_mtok", "cache_write_usd_per_mtok")
"""The API prices a user may type; ``ApiPricing.typed`` says which were typed."""


@dataclass(frozen=True)
class ApiPricing:
    """API prices in $ per million tokens (the short-context rates; batch rates when ``batch``).

    ``model``: a genai-prices model id (or one of our overlay ids, ``calculators/data/api_models.csv``),
    sold by ``provider`` (a genai-prices provider id; "" lets the price data pick by the model's name).
    ``typed``: the prices the user typed (they win, and are labelled "typed"); the others were taken from
    the price data for (model, provider, batch). Without a model every price is typed.
    ``cache_write_usd_per_mtok``: None bills cache writes as input; ``cache_write_fraction``: the share of
    input tokens written to the vendor's prompt cache (the rest of the request shape is in ``Traffic``).
    """

    input_usd_per_mtok: float
    cached_input_usd_per_mtok: float
    output_usd_per_mtok: float
    model: str | None = None
    provider: str = ""
    batch: bool = False
    cache_write_usd_per_mtok: float | None = None
    cache_write_fraction: float = 0.0
    typed: tuple[str, ...] = PRICE_FIELDS

    def __post_init__(self) -> None:
        _validate_section(self, "api")
        typed = tuple(self.typed) if isinstance(self.typed, tuple | list | frozenset | set) else None
        if typed is None or any(f not in PRICE_FIELDS for f in typed):
            raise ScenarioError(f"api.typed must name prices among {', '.join(PRICE_FIELDS)}, got {self.typed!r}")
        all_typed = self.model is None or all(f in typed for f in PRICE_FIELDS[:3])
        object.__setattr__(self, "typed", PRICE_FIELDS if all_typed else tuple(f for f in PRICE_FIELDS if f in typed))


@dataclass(frozen=True)
class SelfHost:
    """One replica = ``gpus_per_replica`` GPUs serving ``output_tokens_per_s`` at the chosen operating point.

    ``throughput_source`` says where the throughput came from (its first word gives its kind: "measured",
    "estimate"/"roofline estimate", else a typed assumption); ``throughput_gpu`` (catalog id), ``_model``,
    ``_dtype`` and ``_input_tokens``/``_output_tokens`` record the context it was measured or estimated in
    ("" / None: not recorded), so ``calculators.provenance`` can mark it stale when the scenario moves away.
    """

    gpu: str
    gpu_usd_per_hour: float
    output_tokens_per_s: float
    gpus_per_replica: int = 1
    prefill_tokens_per_s: float | None = None
    min_replicas: int = 1
    ops_usd_per_month: float = 0.0
    fallback_fraction: float = 0.0
    throughput_source: str = "user input"
    slo_good_fraction: float | None = None  # share of requests meeting the SLO at this point (calculators.goodcost)
    throughput_gpu: str = ""
    throughput_model: str = ""
    throughput_dtype: str = ""
    throughput_input_tokens: float | None = None
    throughput_output_tokens: float | None = None
    throughput_latency: str = ""
    # where gpu_usd_per_hour came from: a tier of calculators/data/gpu_prices.csv (the median of that GPU's
    # rows of the tier), "typed", or "owned" (derived from the own_* fields below, see ``buy_input``).
    # Built directly with a price, the price is typed; a TOML file or URL without a price takes the
    # on-demand tier (``scenario_from_dict``).
    gpu_price_tier: str = TYPED_TIER
    # Owning (gpu_price_tier "owned"): server price (None: calculators/data/gpu_servers.csv for the GPU),
    # GPUs per server (None: that row's, else 8), amortization months, residual value fraction, hosting $ per
    # server-month, GPU power in W (None: TDP x own_load_factor; own_power_kind says "typed" or
    # "measured: <run>"), non-GPU server power in W (None: that row's, else 2000), $/kWh, PUE, people $ per
    # server-month. Defaults and their sources: ``calculators.ownership.DEFAULTS``.
    own_server_usd: float | None = None
    own_gpus_per_server: float | None = None
    own_months: float = _D["amortization_months"][0]
    own_residual: float = _D["residual_fraction"][0]
    own_hosting_usd: float = _D["hosting_usd_per_month"][0]
    own_power_w: float | None = None
    own_power_kind: str = ""
    own_load_factor: float = _D["load_factor"][0]
    own_overhead_w: float | None = None
    own_usd_per_kwh: float = _D["usd_per_kwh"][0]
    own_pue: float = _D["pue"][0]
    own_people_usd: float = _D["people_usd_per_month"][0]

    def __post_init__(self) -> None:
        _validate_section(self, "self_host")
        if self.own_gpus_per_server is not None and not float(self.own_gpus_per_server).is_integer():
            raise ScenarioError(f"self_host.own_gpus_per_server must be a whole number, got {self.own_gpus_per_server:g}")
        if self.gpu_price_tier == OWNED_TIER:
            price = ownership.owned_cost(buy_input(self)).usd_per_gpu_hour
            high = _SPECS["self_host"]["gpu_usd_per_hour"].high or 0
            if price > high:
                raise ScenarioError(f"self_host.gpu_usd_per_hour derived from the owned server is ${price:,.2f}/GPU-hour, "
                                    f"over the {high:g} limit: check self_host.own_server_usd and own_months")
            object.__setattr__(self, "gpu_usd_per_hour", price)


def buy_input(h: SelfHost) -> ownership.BuyInput:
    """The owned server behind ``h`` (its ``own_*`` fields, catalog defaults filled in); ScenarioError naming
    self_host.own_server_usd when neither the scenario nor gpu_servers.csv gives a server price.

    >>> b = buy_input(SelfHost("h100-sxm", 0.0, 1000.0, gpu_price_tier="owned"))
    >>> b.server_usd, b.gpus_per_server, b.power_w_per_gpu, b.power_kind   # gpu_servers.csv; 700 W TDP x 0.8
    (317000.0, 8, 560.0, 'tdp')
    """
    row = ownership.server_price(h.gpu)
    server_usd = h.own_server_usd if h.own_server_usd is not None else None if row is None else row.server_usd
    if server_usd is None:
        raise ScenarioError(f"self_host.own_server_usd is required for an owned {h.gpu}: "
                            "calculators/data/gpu_servers.csv has no sourced server price for it")
    gps = h.own_gpus_per_server if h.own_gpus_per_server is not None else 8 if row is None else row.gpus_per_server
    overhead = h.own_overhead_w if h.own_overhead_w is not None else 2000.0 if row is None else row.overhead_w
    if h.own_power_w is None:
        power, kind = ownership.power_w_per_gpu(catalog.gpu(h.gpu).tdp_w, h.own_load_factor), "tdp"
    else:
        power, kind = h.own_power_w, "measured" if h.own_power_kind.startswith("measured") else "typed"
    try:
        return ownership.BuyInput(server_usd, int(gps), h.own_months, h.own_residual, h.own_hosting_usd, power,
                                  overhead, h.own_usd_per_kwh, h.own_pue, h.own_people_usd, kind)
    except ValueError as e:
        raise ScenarioError(f"self_host owned server: {e}") from None


_GPU_SPECIFIC_OWN = {"own_server_usd": None, "own_gpus_per_server": None, "own_overhead_w": None,
                     "own_power_w": None, "own_power_kind": ""}


def for_new_gpu(h: SelfHost, gpu: str, *, reset: bool | None = None) -> SelfHost:
    """``h`` moved to another GPU while owned: the server price, GPUs per server, rest-of-server power and GPU
    power go back to the new GPU's catalog row and TDP (the old GPU's quote or measured watts never carry
    over; ``reset`` True forces that for the same GPU, as after the page's GPU box changed it); the money
    inputs (months, residual, hosting, $/kWh, PUE, people, load factor) stay. A GPU without a catalog server
    price becomes the on-demand rental tier, as a rental tier the new GPU lacks does.

    >>> h = for_new_gpu(SelfHost("h100-sxm", 0.0, 1000.0, gpu_price_tier="owned", own_power_w=300.0), "h200")
    >>> h.gpu_price_tier, h.own_power_w, buy_input(h).server_usd
    ('owned', None, 340000.0)
    >>> for_new_gpu(h, "l40s").gpu_price_tier
    'on-demand'
    """
    g = catalog.gpu(_check("self_host.gpu", _SPECS["self_host"]["gpu"], gpu))
    changes: dict[str, Any] = dict(_GPU_SPECIFIC_OWN) if (h.gpu != g.id if reset is None else reset) else {}
    server = changes.get("own_server_usd", h.own_server_usd)
    if ownership.server_price(g.id) is None and server is None:
        changes |= {"gpu_price_tier": gpuprices.DEFAULT_TIER,
                    "gpu_usd_per_hour": gpuprices.tier_usd_per_hour(g.id, gpuprices.DEFAULT_TIER)}
    return dataclasses.replace(h, gpu=g.id, **changes)  # one replace: no half-moved SelfHost is validated


@dataclass(frozen=True)
class Context:
    """Flags that do not change the math but change the advice (see ``cost.evaluate``'s reasons)."""

    needs_frontier_quality: bool = False
    fine_tuned_model: bool = False
    has_gpu_expertise: bool = True

    def __post_init__(self) -> None:
        _validate_section(self, "context")


@dataclass(frozen=True)
class Scenario:
    """Everything ``cost.evaluate`` needs."""

    traffic: Traffic
    api: ApiPricing
    self_host: SelfHost
    context: Context = Context()
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        for attr, cls in (("traffic", Traffic), ("api", ApiPricing), ("self_host", SelfHost), ("context", Context)):
            if not isinstance(getattr(self, attr), cls):
                raise ScenarioError(f"{attr} must be a {cls.__name__}, got {type(getattr(self, attr)).__name__}")
        _validate_section(self, "")
        c, w = self.traffic.cached_input_fraction, self.api.cache_write_fraction
        if c + w > 1:
            raise ScenarioError(f"api.cache_write_fraction + traffic.cached_input_fraction must be <= 1, "
                                f"got {w:g} + {c:g}")


_REQUIRED = {
    "traffic": ("requests_per_day", "input_tokens", "output_tokens"),
    "self_host": ("gpu", "output_tokens_per_s"),
}


def _table(d: object, path: str, allowed: Mapping[str, object]) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise ScenarioError(f"{path or 'scenario'} must be a table, got {type(d).__name__}")
    for key in d:
        if key not in allowed:
            shown = f"{path}.{key}" if path else str(key)
            raise ScenarioError(f"unknown key {short(shown)}; allowed: {', '.join(allowed)}")
    return dict(d)


def scenario_from_dict(d: Mapping[str, Any]) -> Scenario:
    """Build a validated Scenario from nested dicts (a parsed TOML file), applying defaults and catalogs.

    Sections and defaults: ``[traffic]`` requests_per_day, input_tokens, output_tokens (required),
    cached_input_fraction (0), peak_to_mean (2.0), input_tokens_p50/p90/p99 and output_tokens_p50/p90/p99
    (none), trace_name (""). ``[api]`` model (a genai-prices model id such as "gpt-6-sol", or an id of
    calculators/data/api_models.csv), provider ("" : the price data picks by the model name), batch (false),
    and/or the prices input/cached_input/output/cache_write_usd_per_mtok, cache_write_fraction (0);
    typed prices win over the model's (taken from the price data for model, provider and batch); with all
    three of input/cached/output typed the model is only a label; without a model, input and output prices
    are required and cached defaults to input. ``[self_host]`` gpu and output_tokens_per_s (required),
    gpus_per_replica (1), gpu_price_tier ("on-demand"; or spot, community, 1y-reserved, 3y-reserved: that tier's median in
    ``calculators.gpuprices``; "typed" when gpu_usd_per_hour is given without a tier; "owned": derived from
    the own_* fields, see ``SelfHost`` and ``calculators.ownership``), gpu_usd_per_hour (the
    tier's price; recomputed when owned), prefill_tokens_per_s (none: capacity set by
    output tokens alone), min_replicas (1), ops_usd_per_month (0), fallback_fraction (0),
    throughput_source ("user input"), slo_good_fraction (none: the report has no ``good_tokens``; else the
    share of requests meeting the latency SLO at the measured point, ``calculators.goodcost``). ``[context]`` needs_frontier_quality (false), fine_tuned_model
    (false), has_gpu_expertise (true). Optional top-level ``name`` and ``description``.

    >>> scenario_from_dict({"trafic": {}})
    Traceback (most recent call last):
    ...
    calculators.scenario.ScenarioError: unknown key 'trafic'; allowed: name, description, traffic, api, self_host, context
    """
    top = _table(d, "", {**_SPECS[""], "traffic": 0, "api": 0, "self_host": 0, "context": 0})
    sections: dict[str, dict[str, Any]] = {}
    for sec in ("traffic", "api", "self_host", "context"):
        if sec not in top and sec != "context":
            raise ScenarioError(f"section [{sec}] is required")
        sections[sec] = _table(top.get(sec, {}), sec, _SPECS[sec])
        for key in _REQUIRED.get(sec, ()):
            if key not in sections[sec]:
                raise ScenarioError(f"{sec}.{key} is required")
    api = _api_section(sections["api"])
    host = sections["self_host"]
    host["gpu"] = _check("self_host.gpu", _SPECS["self_host"]["gpu"], host["gpu"])
    if "gpu_usd_per_hour" in host:
        host.setdefault("gpu_price_tier", TYPED_TIER)
    elif host.get("gpu_price_tier") == OWNED_TIER:
        host["gpu_usd_per_hour"] = 0.0  # derived by SelfHost from the own_* fields
    else:
        tier = _check("self_host.gpu_price_tier", _SPECS["self_host"]["gpu_price_tier"],
                      host.setdefault("gpu_price_tier", gpuprices.DEFAULT_TIER))
        host["gpu_usd_per_hour"] = _tier_price(host["gpu"], tier)
    return Scenario(
        traffic=Traffic(**sections["traffic"]),
        api=api,
        self_host=SelfHost(**host),
        context=Context(**sections["context"]),
        name=top.get("name", ""),
        description=top.get("description", ""),
    )


def _db_prices(model: str, provider: str, batch: bool) -> dict[str, Any]:
    """The model's prices from the price data (lazy import), as ApiPricing fields; ScenarioError naming
    api.model otherwise (an overlay row without a database model says why in its note)."""
    from calculators import apiprices  # noqa: PLC0415  (imports genai-prices)

    try:
        q = apiprices.lookup(model, provider, batch)
    except ValueError as e:
        raise ScenarioError(f"api.model: {e}") from None
    b = q.base
    return {"input_usd_per_mtok": b.input_usd_per_mtok, "cached_input_usd_per_mtok": b.cached_input_usd_per_mtok,
            "output_usd_per_mtok": b.output_usd_per_mtok, "cache_write_usd_per_mtok": b.cache_write_usd_per_mtok}


def _api_section(api: dict[str, Any]) -> ApiPricing:
    """ApiPricing from an ``[api]`` table: typed prices win, the rest come from the model's price data."""
    api = dict(api)
    model = _check("api.model", _SPECS["api"]["model"], api.pop("model", None))
    api.pop("typed", None)
    typed = tuple(k for k in PRICE_FIELDS if k in api)
    if model is None:
        for key in ("input_usd_per_mtok", "output_usd_per_mtok"):
            if key not in api:
                raise ScenarioError(f"api.{key} is required when api.model is not given")
        api.setdefault("cached_input_usd_per_mtok", api["input_usd_per_mtok"])
    elif any(k not in api for k in PRICE_FIELDS[:3]):  # all three typed: the model is only a label
        provider = _check("api.provider", _SPECS["api"]["provider"], api.get("provider", ""))
        batch = _check("api.batch", _SPECS["api"]["batch"], api.get("batch", False))
        api = _db_prices(model, provider, batch) | api
    return ApiPricing(model=model, typed=typed, **api)


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """Nested dict with every field explicit (TOML-ready: a missing prefill or model is left out).

    ``scenario_from_dict(scenario_to_dict(s)) == s`` for every Scenario.
    """
    out: dict[str, Any] = {k: v for k, v in (("name", s.name), ("description", s.description)) if v}
    for sec in ("traffic", "api", "self_host", "context"):
        obj = getattr(s, sec)
        out[sec] = {k: getattr(obj, k) for k in _SPECS[sec] if getattr(obj, k) is not None}
    for k in PRICE_FIELDS:  # prices taken from the price data are looked up again when read back
        if k not in s.api.typed:
            out["api"].pop(k, None)
    return out


def loads_toml(text: str | bytes, *, what: str = "scenario") -> Scenario:
    """Parse a scenario TOML text (``bytes``: an upload or stdin, decoded as UTF-8 here); malformed TOML gives
    a ScenarioError that says the line. The input limits of the module docstring apply; ``what`` names the
    file in their messages.

    >>> loads_toml("[traffic\\nx=1")
    Traceback (most recent call last):
    ...
    calculators.scenario.ScenarioError: malformed TOML: Expected ']' at the end of a table declaration (at line 1, column 9)
    >>> loads_toml("a = " + "[" * 100_000)
    Traceback (most recent call last):
    ...
    calculators.scenario.ScenarioError: scenario is nested deeper than 32 levels of arrays/objects
    """
    try:
        check_size(len(text), MAX_SCENARIO_BYTES, what)  # characters <= bytes: the cheap check first
        if isinstance(text, str) and len(text) * 4 > MAX_SCENARIO_BYTES:
            check_size(len(text.encode("utf-8", "surrogatepass")), MAX_SCENARIO_BYTES, what)
        data = tomllib.loads(decode_text(text, what))
        check_tree(data, what, MAX_DEPTH)
    except FileLimitError as e:
        raise ScenarioError(str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"malformed TOML: {e}") from None
    except RecursionError:  # tomllib recurses per level: stopped at a few hundred, below any limit we'd allow
        raise ScenarioError(f"{what} is nested deeper than {MAX_DEPTH} levels of arrays/objects") from None
    except ValueError as e:  # tomllib's int() past Python's 4,300-digit conversion limit
        if "digits" not in str(e):
            raise
        raise ScenarioError(f"{what}: an integer with over 4,300 digits; integers must be within 64 bits") from None
    return scenario_from_dict(data)


def load_toml(path: str | Path) -> Scenario:
    """Read and parse a scenario file; an unreadable, oversized or non-UTF-8 file is a ScenarioError too
    (its size is checked before it is read)."""
    what = f"scenario file {str(path)!r}"
    try:
        data = read_limited(path, MAX_SCENARIO_BYTES, what)
    except OSError as e:
        raise ScenarioError(f"cannot read {what}: {e.strerror or e}") from None
    except FileLimitError as e:
        raise ScenarioError(str(e)) from None
    return loads_toml(data, what=what)


_DEFAULT_HEADER = "# Scenario for the self-host vs API dashboard; run: python -m calculators evaluate FILE.toml"


def _whole_as_int(d: dict[str, Any]) -> dict[str, Any]:
    """Numbers that are whole written as integers (``20000``, not ``20000.0``); ``loads_toml`` reads them
    back as the same floats. Only up to 2**53, where every float is exact."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _whole_as_int(v)
        elif isinstance(v, float) and v.is_integer() and abs(v) <= 2**53:
            v = int(v)
        out[k] = v
    return out


def dumps_toml(s: Scenario, comments: tomlcomments.Comments | None = None) -> str:
    """The scenario as a TOML file that ``loads_toml`` reads back to an equal Scenario: whole numbers as
    integers, and ``comments`` (``tomlcomments.source_comments`` of the file it was loaded from) put back
    beside their keys; without a header among them, a one-line header says how to run the file.

    >>> print(dumps_toml(DEFAULT_SCENARIO).splitlines()[5])
    requests_per_day = 20000
    >>> src = dumps_toml(DEFAULT_SCENARIO).replace("requests_per_day = 20000", "requests_per_day = 20000  # a desk")
    >>> src = src.replace("# Scenario for", "# Sources: ours\\n# Scenario for")
    >>> [ln[:34] for ln in dumps_toml(loads_toml(src), tomlcomments.source_comments(src)).splitlines() if "#" in ln]
    ['# Sources: ours', '# Scenario for the self-host vs AP', 'requests_per_day = 20000  # a desk']
    """
    comments = dict(comments or {})
    comments.setdefault("", (_DEFAULT_HEADER,))
    return tomlcomments.with_comments(tomli_w.dumps(_whole_as_int(scenario_to_dict(s))), comments)


def _fields(dotted: str) -> tuple[str, str, _Spec]:
    sec, _, key = dotted.rpartition(".")
    if sec not in _SPECS or key not in _SPECS[sec]:
        raise ScenarioError(f"unknown field {dotted!r}; allowed: {', '.join(QUERY_KEYS.values())}")
    return sec, key, _SPECS[sec][key]


def replace_field(s: Scenario, dotted: str, value: object) -> Scenario:
    """A copy of ``s`` with one field set (validated), e.g. ``"self_host.output_tokens_per_s"``.

    A pure set: changing ``api.model`` or ``self_host.gpu`` does not touch prices (see ``apply_api_model``
    and ``apply_gpu`` for that). Setting an API price marks it typed (``ApiPricing.typed``); setting
    ``self_host.gpu_usd_per_hour`` sets ``gpu_price_tier`` to "typed" (``apply_gpu_tier`` takes a tier's price).

    >>> replace_field(DEFAULT_SCENARIO, "self_host.output_tokens_per_s", 3000.0).self_host.output_tokens_per_s
    3000.0
    >>> replace_field(DEFAULT_SCENARIO, "api.output_usd_per_mtok", 0.6).api.typed
    ('output_usd_per_mtok',)
    """
    sec, key, _spec = _fields(dotted)
    if not sec:
        return dataclasses.replace(s, **{key: value})
    extra: dict[str, Any] = {}
    if sec == "api" and key in PRICE_FIELDS:
        extra["typed"] = (*s.api.typed, key)
    if dotted == "self_host.gpu_usd_per_hour":
        extra["gpu_price_tier"] = TYPED_TIER
    return dataclasses.replace(s, **{sec: dataclasses.replace(getattr(s, sec), **{key: value}, **extra)})


def apply_api_model(s: Scenario, model: str, provider: str = "", batch: bool | None = None) -> Scenario:
    """Select an API model (genai-prices id or overlay id) and take all its prices from the price data
    (a UI preset: typed prices are dropped). ``batch`` None keeps the scenario's."""
    batch = s.api.batch if batch is None else batch
    api = _api_section({"model": model, "provider": provider, "batch": batch,
                        "cache_write_fraction": s.api.cache_write_fraction})
    return dataclasses.replace(s, api=api)


def reprice_api(s: Scenario) -> Scenario:
    """Re-take the untyped API prices from the price data (after a change of provider or batch)."""
    if s.api.model is None:
        return s
    d = scenario_to_dict(s)["api"]
    return dataclasses.replace(s, api=_api_section(d))


def _tier_price(gpu: str, tier: str) -> float:
    """The tier's $/GPU-hour for the GPU; ScenarioError naming self_host.gpu_price_tier if it has none."""
    if tier == TYPED_TIER:
        raise ScenarioError("self_host.gpu_price_tier \"typed\" needs self_host.gpu_usd_per_hour")
    if tier == OWNED_TIER:
        raise ScenarioError("self_host.gpu_price_tier \"owned\" derives its price in SelfHost")
    try:
        return gpuprices.tier_usd_per_hour(gpu, tier)
    except ValueError as e:
        raise ScenarioError(f"self_host.gpu_price_tier: {e}") from None


def apply_gpu(s: Scenario, gpu: str) -> Scenario:
    """Select a catalog GPU and take its $/GPU-hour from the scenario's price tier (the median of that GPU's
    rows of the tier), a UI preset. A typed price, or a tier the new GPU lacks, becomes the on-demand tier
    (``calculators.gpuprices.DEFAULT_STATISTIC``): the old GPU's $/hour never carries over.

    >>> s = apply_gpu_tier(DEFAULT_SCENARIO, "community")
    >>> h = apply_gpu(s, "h200").self_host
    >>> h.gpu_price_tier, h.gpu_usd_per_hour == gpuprices.tier_usd_per_hour("h200", "community")
    ('community', True)
    >>> apply_gpu(apply_gpu_tier(DEFAULT_SCENARIO, "spot"), "h200").self_host.gpu_price_tier  # no spot rows
    'on-demand'
    """
    g = catalog.gpu(_check("self_host.gpu", _SPECS["self_host"]["gpu"], gpu))
    tier = s.self_host.gpu_price_tier
    if tier == OWNED_TIER:  # the server price, power and GPU count follow the new GPU's catalog row
        return dataclasses.replace(s, self_host=for_new_gpu(s.self_host, g.id))
    if tier not in gpuprices.tiers(g.id):
        tier = gpuprices.DEFAULT_TIER
    price = _tier_price(g.id, tier)
    return dataclasses.replace(s, self_host=dataclasses.replace(s.self_host, gpu=g.id, gpu_usd_per_hour=price,
                                                                gpu_price_tier=tier))


def apply_gpu_tier(s: Scenario, tier: str) -> Scenario:
    """Take the GPU's $/GPU-hour from another tier of gpu_prices.csv (the median of its rows of that tier);
    ScenarioError naming self_host.gpu_price_tier when the GPU has no row of that tier.

    >>> apply_gpu_tier(DEFAULT_SCENARIO, "community").self_host.gpu_usd_per_hour   # median of 2 community rows
    2.545
    """
    tier = _check("self_host.gpu_price_tier", _SPECS["self_host"]["gpu_price_tier"], tier)
    if tier == OWNED_TIER:  # SelfHost derives the price from the own_* fields
        return dataclasses.replace(s, self_host=dataclasses.replace(s.self_host, gpu_price_tier=tier))
    price = _tier_price(s.self_host.gpu, tier)
    return dataclasses.replace(s, self_host=dataclasses.replace(s.self_host, gpu_usd_per_hour=price,
                                                                gpu_price_tier=tier))


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value) if not isinstance(value, float) else repr(value)


def to_query_params(s: Scenario) -> dict[str, str]:
    """Every field under its short URL key (``QUERY_KEYS``); ``from_query_params`` reads it back exactly.
    An API price taken from the price data is written empty (it is looked up again when read).

    >>> to_query_params(DEFAULT_SCENARIO)["rpd"], to_query_params(DEFAULT_SCENARIO)["api"]
    ('20000', 'gpt-6-luna')
    """
    out: dict[str, str] = {}
    for qp, dotted in QUERY_KEYS.items():
        sec, key, _spec = _fields(dotted)
        untyped = sec == "api" and key in PRICE_FIELDS and key not in s.api.typed
        out[qp] = "" if untyped else _fmt(getattr(getattr(s, sec) if sec else s, key))
    return out


def _parse(path: str, spec: _Spec, text: str) -> object:
    t = text.strip()
    if spec.kind in ("str", "gpu", "tier"):
        return text
    if spec.kind == "model":
        return t or None
    if spec.kind == "opt_float" and t.lower() in ("", "none"):
        return None
    if spec.kind == "float" and path.startswith("api.") and t == "":
        return None  # an API price left to the price data
    if spec.kind == "bool":
        low = t.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ScenarioError(f"{path} must be true or false (1/0), got {text!r:.60}")
    try:
        return float(t)
    except ValueError:
        raise ScenarioError(f"{path} must be a number, got {text!r:.60}") from None


def from_query_params(qp: Mapping[str, str], base: Scenario | None = None) -> tuple[Scenario, list[str]]:
    """Overlay URL parameters on ``base`` (default ``DEFAULT_SCENARIO``); never raises on user input.

    Unknown keys are ignored (other pages own them). A bad value is skipped and reported in the returned
    messages, naming the field; that field keeps ``base``'s value. ``gpu`` alone (without a price) takes
    that GPU's default price, as the UI preset does. The ``[api]`` keys are read together, as a TOML
    ``[api]`` table is: a price given is typed, an empty one (or, when the model changed, a missing one)
    comes from the price data; if that fails, the API keeps ``base``'s values and the message says why.

    >>> s, problems = from_query_params({"rpd": "abc", "otps": "2500"})
    >>> s.self_host.output_tokens_per_s, problems
    (2500.0, ["URL parameter 'rpd': traffic.requests_per_day must be a number, got 'abc' (kept 20000)"])
    """
    s = DEFAULT_SCENARIO if base is None else base
    problems: list[str] = []
    try:
        params = {str(k): str(v) for k, v in qp.items()}
    except Exception:  # a broken mapping is still user input: report, don't raise
        return s, ["URL parameters could not be read"]
    api_in: dict[str, Any] = {}
    for key, dotted in QUERY_KEYS.items():
        if key not in params:
            continue
        sec, field, spec = _fields(dotted)
        old = getattr(getattr(s, sec) if sec else s, field)
        try:
            value = _parse(dotted, spec, params[key])
            if sec == "api":
                api_in[field] = _check(dotted, spec, value) if value is not None else None
            elif key == "gpu" and value != s.self_host.gpu:
                s = apply_gpu(s, str(value))
            elif key == "gpu_tier" and "gpu_usd" not in params:
                s = apply_gpu_tier(s, str(value))
            else:
                s = replace_field(s, dotted, value)
        except ValueError as e:
            problems.append(f"URL parameter {key!r}: {e} (kept {_fmt(old) or 'none'})")
    if api_in:
        table = scenario_to_dict(s)["api"]
        if "model" in api_in and api_in["model"] != s.api.model:
            table = {k: v for k, v in table.items() if k not in PRICE_FIELDS}
        table |= api_in
        table = {k: v for k, v in table.items() if v is not None}
        try:
            s = dataclasses.replace(s, api=_api_section(table))
        except ValueError as e:
            keys = ", ".join(repr(_SPECS["api"][k].qp) for k in api_in)
            problems.append(f"URL parameters {keys}: {e} (kept the API model and prices)")
    return s, problems


# The support-bot example (scenarios/support-bot-8b.toml; sources are given there).
DEFAULT_SCENARIO = Scenario(
    traffic=Traffic(requests_per_day=20_000, input_tokens=1500, output_tokens=300, cached_input_fraction=0.5),
    api=ApiPricing(0.1, 0.01, 0.5, model="gpt-6-luna", cache_write_usd_per_mtok=0.125, typed=()),
    self_host=SelfHost(
        gpu="h100-sxm",
        gpu_usd_per_hour=5.2225,  # the median of the H100 SXM on-demand rows (gpu_prices.csv)
        gpu_price_tier="on-demand",
        output_tokens_per_s=3400.0,
        ops_usd_per_month=1500.0,
        throughput_source="measured: Lambda vllm-benchmark, Llama-3.1-8B FP8, 1xH100 SXM, vLLM 0.5.4 (2024-09)",
        throughput_gpu="h100-sxm",
        throughput_model="meta-llama/Llama-3.1-8B-Instruct",
        throughput_dtype="fp8",
    ),
    name="Support bot, Llama 3.1 8B",
    description="A customer-support chatbot: 20,000 requests a day, Llama-3.1-8B on one H100 "
    "versus gpt-6-luna.",
)

