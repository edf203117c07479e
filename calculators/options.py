"""Options side by side: several named variants of a scenario over the same traffic, compared in one table.

An **options set** is the shared ``Traffic`` plus up to ``MAX_OPTIONS`` (8) named options. Each option is a whole
``Scenario`` variant (so every scenario field, including ones added later, works in an option) of one of two
kinds:

* ``self_host``: its monthly cost is the self-host side of ``cost.evaluate`` (GPUs + ops + API fallback); its
  ``[api]`` section is the API it falls back to (and breaks even against);
* ``api``: API only; its monthly cost is the API side of ``cost.evaluate`` (its self-host side is a fixed
  placeholder, ``API_PLACEHOLDER_HOST``, never shown).

TOML form (one file; ``options_to_toml`` / ``options_from_toml`` round-trip exactly)::

    name = "Planning meeting"            # optional, as description
    [traffic]                            # once, shared by every option (the scenario's [traffic] table)
    requests_per_day = 50000
    ...
    [api]                                # optional: the API of self-host options that have no [option.api]
    [[option]]
    name = "H100 fp8 70B"                # 1..60 characters, unique
    kind = "self_host"                   # or "api"; default self_host
    [option.api]                         # a scenario's [api] table
    [option.self_host]                   # a scenario's [self_host] table (not allowed for kind = "api")
    [option.context]                     # optional

Errors are ``OptionsError`` (a ``ScenarioError``) naming the option and field, e.g.
``option 2 ('L40S 8B'): self_host.gpus_per_replica must be <= 64, got 100``. File limits are the scenario's
(``calculators.filelimits``: 256 KiB, UTF-8, 32 levels).

URL form (``options_to_query_params``): the traffic under the scenario's own keys (``rpd``, ``in``, ``out`` …),
``opts_name``/``opts_desc``, and per option ``o{i}_name``, ``o{i}_kind`` (only "api") and ``o{i}_{key}`` for the
scenario URL keys (``calculators.scenario.QUERY_KEYS``) whose value differs from ``base_scenario(traffic)``
(the GPU, its price and tier are always written for a self-host option; all API keys once one differs).

Comparison (``compare_options``): one row per option from ``cost.evaluate`` of its scenario. Self-host $/M input
and $/M output split the monthly bill by where a replica's time goes (``cost.replica_busy_s_per_request``)::

    s = input * (1 - cached) / prefill_tokens_per_s / busy_s
    usd_per_m_input  = bill * s / (requests_per_month * input) * 1e6
    usd_per_m_output = bill * (1 - s) / (requests_per_month * output) * 1e6

Without a prefill rate the output rate includes prompt processing, so the whole bill is charged to output tokens
and $/M input is None ("in the output price"), not $0.

The API's are its effective rates (``cost.ApiRates``: long-context tier and cache writes folded in; input is the
blend of cached and uncached input). None at zero traffic.

>>> text = '''
... [traffic]
... requests_per_day = 20000
... input_tokens = 1500
... output_tokens = 300
... [[option]]
... name = "L40S 8B"
... [option.api]
... input_usd_per_mtok = 0.1
... output_usd_per_mtok = 0.5
... [option.self_host]
... gpu = "l40s"
... gpu_usd_per_hour = 1.0
... output_tokens_per_s = 1000
... [[option]]
... name = "API"
... kind = "api"
... [option.api]
... input_usd_per_mtok = 0.1
... output_usd_per_mtok = 0.5
... '''
>>> o = options_from_toml(text)
>>> options_from_toml(options_to_toml(o)) == o
True
>>> df = compare_options(o)
>>> df[["option", "monthly_usd", "replicas"]].to_dict("records")   # 1 x $1 x 730 h; 608,333 req x $0.0003
[{'option': 'L40S 8B', 'monthly_usd': 730.0, 'replicas': 1}, {'option': 'API', 'monthly_usd': 182.5, 'replicas': None}]
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import tomli_w

from calculators import catalog, cost
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
from calculators.provenance import TYPED_SOURCE, priced_model_label, stale_reasons, throughput_kind
from calculators.scenario import (
    DEFAULT_SCENARIO,
    QUERY_KEYS,
    Context,
    Scenario,
    ScenarioError,
    Traffic,
    from_query_params,
    scenario_from_dict,
    scenario_to_dict,
    to_query_params,
)

__all__ = [
    "MAX_OPTIONS",
    "MAX_NAME_CHARS",
    "KINDS",
    "API_PLACEHOLDER_HOST",
    "OptionsError",
    "Option",
    "OptionsSet",
    "base_scenario",
    "make_option",
    "add_option",
    "replace_option",
    "remove_option",
    "options_to_dict",
    "options_from_dict",
    "options_to_toml",
    "options_from_toml",
    "load_options",
    "options_to_query_params",
    "options_from_query_params",
    "COMPARE_COLUMNS",
    "compare_options",
    "slo_of_source",
]

MAX_OPTIONS = 8
MAX_NAME_CHARS = 60
KINDS = ("self_host", "api")
API_PLACEHOLDER_HOST = DEFAULT_SCENARIO.self_host
"""The self-host side of an API-only option's scenario (``cost.evaluate`` needs one; never shown)."""
_SCALAR_KEYS = ("name", "kind")
_SECTIONS = ("api", "self_host", "context")


class OptionsError(ScenarioError):
    """An options set, file or value is invalid; the message names the option and the field."""


@dataclass(frozen=True)
class Option:
    """One named option: ``kind`` "self_host" or "api", and the whole scenario it is (its traffic is the set's,
    its name the option's; ``OptionsSet`` normalises both)."""

    name: str
    scenario: Scenario
    kind: str = "self_host"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > MAX_NAME_CHARS:
            raise OptionsError(f"option name must be text of 1 to {MAX_NAME_CHARS} characters, got "
                               f"{short(self.name)}")
        if self.kind not in KINDS:
            raise OptionsError(f"option {self.name!r}: kind must be one of {', '.join(KINDS)}, got {short(self.kind)}")
        if not isinstance(self.scenario, Scenario):
            raise OptionsError(f"option {self.name!r}: scenario must be a Scenario")


@dataclass(frozen=True)
class OptionsSet:
    """The shared traffic and the options (at most ``MAX_OPTIONS``, names unique). Each option's scenario gets
    the set's traffic, the option's name and no description; an API option's self-host side is
    ``API_PLACEHOLDER_HOST`` and its context the default (neither changes its cost)."""

    traffic: Traffic
    options: tuple[Option, ...] = ()
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.traffic, Traffic):
            raise OptionsError("traffic must be a Traffic")
        opts = tuple(self.options)
        if len(opts) > MAX_OPTIONS:
            raise OptionsError(f"at most {MAX_OPTIONS} options, got {len(opts)}")
        seen: set[str] = set()
        fixed = []
        for o in opts:
            if not isinstance(o, Option):
                raise OptionsError(f"options must be Option values, got {type(o).__name__}")
            if o.name in seen:
                raise OptionsError(f"option names must be unique; {o.name!r} is used twice")
            seen.add(o.name)
            s = o.scenario
            extra: dict[str, Any] = {}
            if o.kind == "api":
                extra = {"self_host": API_PLACEHOLDER_HOST, "context": Context()}
            try:
                s = dataclasses.replace(s, traffic=self.traffic, name=o.name, description="", **extra)
            except ScenarioError as e:
                raise OptionsError(f"option {o.name!r}: {e}") from None
            fixed.append(dataclasses.replace(o, scenario=s) if s != o.scenario else o)
        for key, limit in (("name", 200), ("description", 2000)):
            v = getattr(self, key)
            if not isinstance(v, str) or len(v) > limit:
                raise OptionsError(f"{key} must be text of at most {limit} characters, got {short(v)}")
        object.__setattr__(self, "options", tuple(fixed))

    def names(self) -> list[str]:
        return [o.name for o in self.options]


def base_scenario(traffic: Traffic) -> Scenario:
    """The scenario an option's URL keys are written against: the default scenario with this traffic."""
    return dataclasses.replace(DEFAULT_SCENARIO, traffic=traffic, name="", description="", context=Context())


def make_option(name: str, scenario: Scenario, kind: str = "self_host") -> Option:
    """An option from a scenario (its traffic is replaced by the set's when it joins one)."""
    return Option(name=name, scenario=scenario, kind=kind)


def add_option(oset: OptionsSet, option: Option) -> OptionsSet:
    """``oset`` with ``option`` appended (OptionsError when full or the name is taken)."""
    return dataclasses.replace(oset, options=(*oset.options, option))


def replace_option(oset: OptionsSet, name: str, option: Option) -> OptionsSet:
    """``oset`` with the option called ``name`` replaced in place (it may be renamed)."""
    if name not in oset.names():
        raise OptionsError(f"no option named {name!r}")
    return dataclasses.replace(oset, options=tuple(option if o.name == name else o for o in oset.options))


def remove_option(oset: OptionsSet, name: str) -> OptionsSet:
    """``oset`` without the option called ``name`` (unchanged if there is none)."""
    return dataclasses.replace(oset, options=tuple(o for o in oset.options if o.name != name))


# ---------------------------------------------------------------------------------------------- TOML / dicts


def _option_dict(o: Option) -> dict[str, Any]:
    d = scenario_to_dict(o.scenario)
    out: dict[str, Any] = {"name": o.name}
    if o.kind == "api":
        out["kind"] = "api"
        out["api"] = d["api"]
    else:
        out.update({sec: d[sec] for sec in _SECTIONS})
    return out


def options_to_dict(oset: OptionsSet) -> dict[str, Any]:
    """Nested dict (TOML-ready): name/description when set, ``traffic``, ``option`` (a list of tables)."""
    out: dict[str, Any] = {k: v for k, v in (("name", oset.name), ("description", oset.description)) if v}
    out["traffic"] = scenario_to_dict(dataclasses.replace(DEFAULT_SCENARIO, traffic=oset.traffic))["traffic"]
    out["option"] = [_option_dict(o) for o in oset.options]
    return out


def _option_from_dict(i: int, d: object, traffic: Mapping[str, Any], shared_api: Mapping[str, Any] | None
                      ) -> Option:
    where = f"option {i}"
    if not isinstance(d, Mapping):
        raise OptionsError(f"{where} must be a table, got {type(d).__name__}")
    name = d.get("name")
    if isinstance(name, str) and name.strip():
        where = f"option {i} ({name[:MAX_NAME_CHARS]!r})"
    for key in d:
        if key not in (*_SCALAR_KEYS, *_SECTIONS):
            raise OptionsError(f"{where}: unknown key {short(key)}; allowed: {', '.join((*_SCALAR_KEYS, *_SECTIONS))}")
    if name is None:
        raise OptionsError(f"{where}: name is required")
    kind = d.get("kind", "self_host")
    if kind not in KINDS:
        raise OptionsError(f"{where}: kind must be one of {', '.join(KINDS)}, got {short(kind)}")
    api = d.get("api", shared_api)
    if api is None:
        raise OptionsError(f"{where}: [option.api] is required (no shared [api] table either)")
    if kind == "api":
        for sec in ("self_host", "context"):
            if sec in d:
                raise OptionsError(f"{where}: an API option has no [option.{sec}] table")
        host: Any = scenario_to_dict(DEFAULT_SCENARIO)["self_host"]
    else:
        if "self_host" not in d:
            raise OptionsError(f"{where}: [option.self_host] is required (or kind = \"api\")")
        host = d["self_host"]
    table = {"traffic": traffic, "api": api, "self_host": host, "context": d.get("context", {})}
    try:
        s = scenario_from_dict(table)
        return Option(name=name, scenario=s, kind=kind)
    except ScenarioError as e:
        raise OptionsError(f"{where}: {e}") from None


def options_from_dict(d: Mapping[str, Any]) -> OptionsSet:
    """An OptionsSet from nested dicts (a parsed options TOML; module docstring)."""
    if not isinstance(d, Mapping):
        raise OptionsError(f"an options file must be a table, got {type(d).__name__}")
    allowed = ("name", "description", "traffic", "api", "option")
    for key in d:
        if key not in allowed:
            raise OptionsError(f"unknown key {short(key)}; allowed: {', '.join(allowed)}")
    if "traffic" not in d:
        raise OptionsError("section [traffic] is required")
    raw = d.get("option", [])
    if not isinstance(raw, list):
        raise OptionsError("option must be an array of tables ([[option]])")
    if len(raw) > MAX_OPTIONS:
        raise OptionsError(f"at most {MAX_OPTIONS} options, got {len(raw)}")
    try:
        traffic = scenario_from_dict({"traffic": d["traffic"], **{k: v for k, v in
                                      scenario_to_dict(DEFAULT_SCENARIO).items() if k in ("api", "self_host")}}
                                     ).traffic
    except ScenarioError as e:
        raise OptionsError(str(e)) from None
    shared_api = d.get("api")
    options = [_option_from_dict(i, o, d["traffic"], shared_api) for i, o in enumerate(raw, start=1)]
    return OptionsSet(traffic=traffic, options=tuple(options), name=d.get("name", ""),
                      description=d.get("description", ""))


def options_from_toml(text: str | bytes, *, what: str = "options file") -> OptionsSet:
    """Parse an options TOML (``bytes``: an upload, decoded as UTF-8); limits as a scenario file's.

    >>> options_from_toml("[traffic]\\nrequests_per_day = 1\\ninput_tokens = 1\\noutput_tokens = 1\\n"
    ...                   "[[option]]\\nname = 'x'\\nkind = 'api'\\n[option.api]\\ninput_usd_per_mtok = -1\\n"
    ...                   "output_usd_per_mtok = 1")
    Traceback (most recent call last):
    ...
    calculators.options.OptionsError: option 1 ('x'): api.input_usd_per_mtok must be >= 0, got -1
    """
    try:
        check_size(len(text), MAX_SCENARIO_BYTES, what)
        if isinstance(text, str) and len(text) * 4 > MAX_SCENARIO_BYTES:
            check_size(len(text.encode("utf-8", "surrogatepass")), MAX_SCENARIO_BYTES, what)
        data = tomllib.loads(decode_text(text, what))
        check_tree(data, what, MAX_DEPTH)
    except FileLimitError as e:
        raise OptionsError(str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise OptionsError(f"malformed TOML: {e}") from None
    except RecursionError:
        raise OptionsError(f"{what} is nested deeper than {MAX_DEPTH} levels of arrays/objects") from None
    except ValueError as e:  # tomllib's int() past Python's 4,300-digit limit
        if "digits" not in str(e):
            raise
        raise OptionsError(f"{what}: an integer with over 4,300 digits; integers must be within 64 bits") from None
    return options_from_dict(data)


def load_options(path: str | Path) -> OptionsSet:
    """Read an options TOML file (size checked before reading); OptionsError on any problem, one line."""
    what = f"options file {str(path)!r}"
    try:
        data = read_limited(path, MAX_SCENARIO_BYTES, what)
    except OSError as e:
        raise OptionsError(f"cannot read {what}: {e.strerror or e}") from None
    except FileLimitError as e:
        raise OptionsError(str(e)) from None
    return options_from_toml(data, what=what)


def options_to_toml(oset: OptionsSet) -> str:
    """The set as TOML (``[traffic]`` once, one ``[[option]]`` table each) that ``options_from_toml`` reads
    back to an equal set."""
    d = options_to_dict(oset)
    parts = ["# Options side by side; run: python -m calculators options FILE.toml\n"]
    top = {k: d[k] for k in ("name", "description") if k in d}
    if top:
        parts.append(tomli_w.dumps(top))
    parts.append("[traffic]\n" + tomli_w.dumps(d["traffic"]))
    for o in d["option"]:
        parts.append("[[option]]\n" + tomli_w.dumps({k: o[k] for k in _SCALAR_KEYS if k in o}))
        for sec in _SECTIONS:
            if sec in o:
                parts.append(f"[option.{sec}]\n" + tomli_w.dumps(o[sec]))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- URL

_TRAFFIC_KEYS = [k for k, dotted in QUERY_KEYS.items() if dotted.startswith("traffic.")]
_OPTION_KEYS = [k for k, dotted in QUERY_KEYS.items() if dotted.startswith(("api.", "self_host.", "context."))]
_API_KEYS = [k for k in _OPTION_KEYS if QUERY_KEYS[k].startswith("api.")]
_ALWAYS_HOST = ("gpu", "gpu_usd", "gpu_tier")


def options_to_query_params(oset: OptionsSet) -> dict[str, str]:
    """The set as URL parameters (module docstring); ``options_from_query_params`` reads it back exactly."""
    base = base_scenario(oset.traffic)
    base_qp = to_query_params(base)
    out = {k: base_qp[k] for k in _TRAFFIC_KEYS}
    if oset.name:
        out["opts_name"] = oset.name
    if oset.description:
        out["opts_desc"] = oset.description
    for i, o in enumerate(oset.options, start=1):
        qp = to_query_params(o.scenario)
        out[f"o{i}_name"] = o.name
        keys = _API_KEYS if o.kind == "api" else _OPTION_KEYS
        diff = [k for k in keys if qp[k] != base_qp[k]]
        if o.kind == "api":
            out[f"o{i}_kind"] = "api"
        else:
            diff = sorted(set(diff) | set(_ALWAYS_HOST), key=_OPTION_KEYS.index)
        if any(k in _API_KEYS for k in diff):
            diff = sorted(set(diff) | set(_API_KEYS), key=_OPTION_KEYS.index)
        out.update({f"o{i}_{k}": qp[k] for k in diff})
    return out


def options_from_query_params(qp: Mapping[str, str]) -> tuple[OptionsSet | None, list[str]]:
    """The set in URL parameters, or None when they hold no option (``o1_name`` …); never raises on user input.
    A bad value is skipped (the option keeps the base value) and named in the returned messages; an option whose
    name or kind is bad, or that repeats a name, is left out with a message."""
    try:
        params = {str(k): str(v) for k, v in qp.items()}
    except Exception:  # a broken mapping is still user input
        return None, ["URL parameters could not be read"]
    if not any(re.fullmatch(r"o\d+_name", k) for k in params):
        return None, []
    problems: list[str] = []
    traffic_s, tp = from_query_params({k: params[k] for k in _TRAFFIC_KEYS if k in params})
    problems += tp
    base = base_scenario(traffic_s.traffic)
    options: list[Option] = []
    for i in range(1, MAX_OPTIONS + 1):
        name = params.get(f"o{i}_name")
        if name is None:
            continue
        kind = params.get(f"o{i}_kind", "self_host")
        sub = {k: params[f"o{i}_{k}"] for k in (_API_KEYS if kind == "api" else _OPTION_KEYS)
               if f"o{i}_{k}" in params}
        s, ps = from_query_params(sub, base=base)
        problems += [f"option {i} ({name[:MAX_NAME_CHARS]!r}): {p}" for p in ps]
        try:
            o = Option(name=name, scenario=s, kind=kind)
            options.append(o) if o.name not in {x.name for x in options} else problems.append(
                f"option {i}: the name {name!r} is used twice (left out)")
        except OptionsError as e:
            problems.append(f"URL option {i}: {e} (left out)")
    extra = [k for k in params if re.fullmatch(r"o(\d+)_name", k) and not 1 <= int(k[1:-5]) <= MAX_OPTIONS]
    if extra:
        problems.append(f"at most {MAX_OPTIONS} options: {', '.join(sorted(extra))} left out")
    meta = {"name": params.get("opts_name", ""), "description": params.get("opts_desc", "")}
    try:
        return OptionsSet(traffic=traffic_s.traffic, options=tuple(options), **meta), problems
    except OptionsError as e:
        problems.append(f"URL parameters 'opts_name'/'opts_desc': {e} (left out)")
        return OptionsSet(traffic=traffic_s.traffic, options=tuple(options)), problems


# ---------------------------------------------------------------------------------------------- comparison

COMPARE_COLUMNS = (
    "option", "kind", "deployment", "monthly_usd", "gpu_usd_per_month", "ops_usd_per_month",
    "fallback_usd_per_month", "api_usd_per_month", "usd_per_m_input", "usd_per_m_output", "replicas", "gpus",
    "utilization", "latency_at_slo", "run_id", "throughput_tok_s", "throughput_kind", "throughput_source",
    "throughput_stale", "gpu_price_source", "api_price_source",
)
"""``compare_options`` columns. Money in $ per month (``*_usd_per_month``, ``monthly_usd``: the option's total)
or $ per million tokens; ``utilization`` a share (0-1); ``throughput_stale``: why the throughput no longer fits
the option (``provenance.stale_reasons``: another GPU or request shape than it was measured or estimated for),
None when it fits; self-host-only columns are None for an API option."""

_SLO = re.compile(r"^measured run (\S+) at SLO (.+?), (?:c[=≈]|≈?[\d.]+(?:e[+-]?\d+)? req/s)")


def slo_of_source(source: str) -> tuple[str, str] | None:
    """(run id, SLO met) of a throughput taken at a latency SLO from a measured run
    (``calculators.operating.source_text``), else None.

    >>> slo_of_source("measured run 3 at SLO TTFT p90 ≤ 500 ms, TPOT p90 ≤ 50 ms, c=32 (512 in / 256 out tokens)")
    ('3', 'TTFT p90 ≤ 500 ms, TPOT p90 ≤ 50 ms')
    >>> slo_of_source("measured: Lambda vllm-benchmark") is None
    True
    """
    m = _SLO.match(source.strip())
    return (m.group(1), m.group(2)) if m else None


_RUN_ID = re.compile(r"\brun (\S+?)[,:;)\s]")


def _throughput_provenance(s: Scenario) -> tuple[str, str, str | None]:
    """(kind: typed/estimate/measured, source text, run id or None)."""
    src = s.self_host.throughput_source
    kind = throughput_kind(src)
    if kind == "assumption":
        return "typed", ("typed by you" if src.strip() in ("", TYPED_SOURCE) else src), None
    slo = slo_of_source(src)
    run = slo[0] if slo else None
    if run is None and kind == "measured":
        m = _RUN_ID.search(src + " ")
        run = m.group(1) if m else None
    return kind, src, run


def _latency(h: Any, slo: tuple[str, str] | None) -> str | None:
    """The latency measured at the throughput's point and the SLO it met: "TTFT p90 312 ms, TPOT p90 41 ms
    (SLO TTFT p90 ≤ 500 ms, TPOT p90 ≤ 50 ms)"; the SLO alone for a scenario saved before the latency was kept;
    None for a typed or estimated throughput.

    >>> from types import SimpleNamespace as NS
    >>> _latency(NS(throughput_latency="TTFT p90 312 ms", throughput_source="measured run 3"), ("3", "TTFT p90 ≤ 500 ms"))
    'TTFT p90 312 ms (SLO TTFT p90 ≤ 500 ms)'
    >>> _latency(NS(throughput_latency="TPOT p90 9 ms", throughput_source="measured: probe run 4, c=8"), None)
    'TPOT p90 9 ms (no SLO set)'
    >>> _latency(NS(throughput_latency="", throughput_source="measured run 3"), ("3", "TTFT p90 ≤ 500 ms"))
    'SLO TTFT p90 ≤ 500 ms met (latency not recorded)'
    >>> _latency(NS(throughput_latency="TPOT p90 9 ms", throughput_source="user input"), None) is None
    True
    """
    if throughput_kind(h.throughput_source) != "measured":
        return None
    lat = (h.throughput_latency or "").strip()
    if lat:
        return f"{lat} ({'SLO ' + slo[1] if slo else 'no SLO set'})"
    return None if slo is None else f"SLO {slo[1]} met (latency not recorded)"


def _api_price_source(r: cost.Report) -> str:
    if r.rates is None:
        return ""
    return r.rates.source if r.rates.source != "typed" else "typed by you"


def _per_m(usd: float, tokens: float) -> float | None:
    v = usd / tokens * 1e6 if tokens > 0 else math.inf
    return v if math.isfinite(v) else None


def _row(o: Option) -> dict[str, Any]:
    r = cost.evaluate(o.scenario)
    s, t, h = o.scenario, o.scenario.traffic, o.scenario.self_host
    req_month = r.api.requests_per_month
    if o.kind == "api":
        api_label = priced_model_label(s) + (" (batch)" if s.api.batch else "")
        rates = r.rates
        cached = t.cached_input_fraction
        usd_in = None if rates is None or req_month == 0 else \
            rates.input_usd_per_mtok * (1 - cached) + rates.cached_input_usd_per_mtok * cached
        return {
            "option": o.name, "kind": "api", "deployment": f"API: {api_label}", "monthly_usd": r.api.usd_per_month,
            "gpu_usd_per_month": None, "ops_usd_per_month": None, "fallback_usd_per_month": None,
            "api_usd_per_month": r.api.usd_per_month, "usd_per_m_input": usd_in,
            "usd_per_m_output": None if rates is None or req_month == 0 else rates.output_usd_per_mtok,
            "replicas": None, "gpus": None, "utilization": None, "latency_at_slo": None, "run_id": None,
            "throughput_tok_s": None, "throughput_kind": None, "throughput_source": None, "throughput_stale": None,
            "gpu_price_source": None, "api_price_source": _api_price_source(r)}
    host = r.self_host
    prefill_s = 0.0 if h.prefill_tokens_per_s is None else \
        t.input_tokens * (1 - t.cached_input_fraction) / h.prefill_tokens_per_s
    share = min(prefill_s / host.busy_s_per_request, 1.0) if host.busy_s_per_request > 0 else 0.0
    bill = host.usd_per_month
    kind, source, run = _throughput_provenance(s)
    slo = slo_of_source(h.throughput_source)
    gpu_name = catalog.gpus()[h.gpu].name
    return {
        "option": o.name, "kind": "self_host", "deployment": f"{h.gpus_per_replica}x {gpu_name}",
        "monthly_usd": bill, "gpu_usd_per_month": host.gpu_usd_per_month,
        "ops_usd_per_month": host.ops_usd_per_month, "fallback_usd_per_month": host.fallback_usd_per_month,
        "api_usd_per_month": None,
        "usd_per_m_input": None if h.prefill_tokens_per_s is None else _per_m(bill * share,
                                                                                req_month * t.input_tokens),
        "usd_per_m_output": _per_m(bill * (1 - share), req_month * t.output_tokens),
        "replicas": int(host.replicas), "gpus": int(host.gpus), "utilization": host.utilization,
        "latency_at_slo": _latency(h, slo), "run_id": run,
        "throughput_tok_s": h.output_tokens_per_s, "throughput_kind": kind, "throughput_source": source,
        "throughput_stale": "; ".join(stale_reasons(s)) or None, "gpu_price_source": cost.gpu_price_words(s), "api_price_source": _api_price_source(r)}


def compare_options(oset: OptionsSet | Sequence[Option]) -> pd.DataFrame:
    """One row per option (``COMPARE_COLUMNS``), each from ``cost.evaluate`` of the option's scenario: the
    monthly cost (self-host: GPUs + ops + API fallback; API: the API bill), $/M input and output (module
    docstring), replicas, utilization, the SLO met and run id when the throughput was taken at a latency SLO
    from a measured run, and where each number came from (throughput kind typed/estimate/measured and its
    source, the GPU price tier or typed, the API price data or typed). An empty set gives an empty frame."""
    opts = oset.options if isinstance(oset, OptionsSet) else tuple(oset)
    df = pd.DataFrame([_row(o) for o in opts], columns=list(COMPARE_COLUMNS))
    return df.astype({"replicas": "Int64", "gpus": "Int64"})
