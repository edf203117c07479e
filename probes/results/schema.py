"""The run JSON's shape as the store accepts it: limits, parsing of untrusted text, and a check of every field
the pages and the CLI table read later (so a stored run can never crash them).

Untrusted input (an imported file, a Results-page upload) goes through :func:`parse_json`:

* at most :data:`MAX_IMPORT_BYTES` (64 MiB; the largest reference run, with every request's samples, is 3.3 MB);
* strict JSON: ``NaN``/``Infinity`` are refused (our own exports never write them), and integers longer
  than 19 digits (beyond 64 bits) too, before Python converts them;
* nesting at most :data:`MAX_DEPTH` levels (a run is 6 deep), checked without recursion, so a file nested
  5,000 deep is a ``ValueError``, never a ``RecursionError``;

then :func:`check_run` (also applied to every run the probe saves): at most :data:`MAX_POINTS` points, and each
field below has its type (a trace replay's ``replay`` block included), finite numbers, counts as integers
>= 0. Errors are ``ValueError`` with a one-line message naming the field
(``run.points[3].ttft_ms.median must be a finite number or null, got 'x'``).

>>> check_run({"schema": "selfhost-vs-api/probe-run/1", "status": "complete",
...            "points": [{"ttft_ms": {"median": "x"}}]})
Traceback (most recent call last):
...
ValueError: run.points[0].ttft_ms.median must be a finite number or null, got 'x'
>>> parse_json("[" * 5000 + "]" * 5000)
Traceback (most recent call last):
...
ValueError: JSON nested deeper than 32 levels: not a run file
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["read_run_file", "RUN_SCHEMA", "STATUSES", "WEIGHTS", "MAX_IMPORT_BYTES", "MAX_DEPTH", "MAX_POINTS",
           "MAX_SAMPLES_PER_POINT", "parse_json", "check_depth", "check_size", "check_run", "check_point"]

RUN_SCHEMA = "selfhost-vs-api/probe-run/1"
STATUSES = ("complete", "partial", "failed", "interrupted")
WEIGHTS = ("synthetic", "real", "unknown")
MAX_IMPORT_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 32
MAX_POINTS = 1_000
MAX_SAMPLES_PER_POINT = 1_000_000

_POINT_NUMBERS = ("request_rate", "output_tokens_per_s", "requests_per_s", "total_tokens_per_s",
                  "goodput_requests_per_s", "duration_s")
_POINT_COUNTS = ("completed", "failed", "total_input_tokens", "total_output_tokens")
_STATS = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")
_POWER_NUMBERS = ("mean_w", "peak_w", "energy_j", "j_per_output_token", "duration_s")
_SERVER_NUMBERS = ("kv_cache_usage_peak", "preemptions", "num_requests_running_max", "num_requests_waiting_max",
                   "prefix_cache_hit_rate", "kv_cache_size_tokens", "prefix_cache_hits", "prefix_cache_queries")
# run["fleet"] / point["fleet"] (several replicas, probes.load.fleet): what the CLI table and pages read
_FLEET_REPLICA_NUMBERS = ("output_tokens_per_s", "requests_per_s")
_FLEET_REPLICA_COUNTS = ("index", "sent", "completed", "failed")
# run["replay"] (a trace replay, probes.plan.replay): numbers, counts and texts the CLI table and pages read
_REPLAY_NUMBERS = ("time_scale", "trace_span_s", "replay_span_s", "offered_rate", "prefix_reuse_fraction_trace",
                   "prefix_reuse_fraction_sent", "prefix_cache_hit_rate", "prefix_cache_hits",
                   "prefix_cache_queries", "late_threshold_ms")
_REPLAY_COUNTS = ("max_requests", "block_tokens", "concurrency", "seed", "trace_requests", "max_model_len",
                  "length_limit_tokens", "planned_requests", "skipped_requests", "clipped_requests",
                  "clipped_input_tokens", "clipped_output_tokens", "raised_to_one", "sent_requests", "late_requests")
_REPLAY_TEXTS = ("trace_name", "format", "overlong", "salt")


def _short(value: Any) -> str:
    """A value for a one-line error message: repr, single line, at most 60 characters."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def check_size(n_bytes: int, what: str = "the file") -> None:
    """ValueError when ``n_bytes`` is over :data:`MAX_IMPORT_BYTES`."""
    if n_bytes > MAX_IMPORT_BYTES:
        raise ValueError(f"{what} is {n_bytes / 2**20:.1f} MiB, over the {MAX_IMPORT_BYTES // 2**20} MiB import limit")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (strict JSON only: NaN and Infinity are refused)")


def check_depth(obj: Any, limit: int = MAX_DEPTH) -> None:
    """ValueError when ``obj`` nests lists/objects deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping | list | tuple):
            if depth > limit:
                raise ValueError(f"JSON nested deeper than {limit} levels: not a run file")
            children = node.values() if isinstance(node, Mapping) else node
            stack.extend((c, depth + 1) for c in children if isinstance(c, Mapping | list | tuple))


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > 19:
        raise ValueError(f"a {len(digits.lstrip('-'))}-digit integer: numbers in a run fit in 64 bits")
    return int(digits)


def parse_json(text: str | bytes, what: str = "the file") -> Any:
    """Untrusted JSON text -> Python object, within the size, strictness and depth limits (ValueError)."""
    check_size(len(text), what)
    try:
        obj = json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels: not a run file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    check_depth(obj)
    return obj


def read_run_file(path: str) -> dict:
    """A probe run JSON file within the import limits, checked (``check_run``); one-line ValueError naming the
    file (the CLIs' ``--run`` / ``--throughput-run``)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_IMPORT_BYTES + 1)
        run = parse_json(data, what=path)
        check_run(run)
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith(path) else f"{path}: {msg}") from None
    return run


def _number(value: Any, where: str, *, count: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > 1e300 \
            or not math.isfinite(value):  # abs() first: math.isfinite(10**400) is an OverflowError
        kind = "an integer >= 0" if count else "a finite number"
        raise ValueError(f"{where} must be {kind} or null, got {_short(value)}")
    if count and (value < 0 or value != int(value)):
        raise ValueError(f"{where} must be an integer >= 0 or null, got {_short(value)}")


def _mapping(value: Any, where: str) -> Mapping[str, Any] | None:
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object or null, got {_short(value)}")
    return value


def _text(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where} must be a string or null, got {_short(value)}")


def _text_list(value: Any, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of strings, got {_short(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{where}[{i}] must be a string, got {_short(item)}")


def check_point(p: Any, where: str) -> None:
    """One point (or ``best_point``): every number the pages read is a finite number, counts are integers."""
    if not isinstance(p, Mapping):
        raise ValueError(f"{where} must be a JSON object, got {_short(p)}")
    conc = p.get("concurrency")
    if conc is not None and (isinstance(conc, bool) or not isinstance(conc, int) or conc < 1):
        raise ValueError(f"{where}.concurrency must be an integer >= 1 or null, got {_short(conc)}")
    for key in _POINT_NUMBERS:
        _number(p.get(key), f"{where}.{key}")
    for key in _POINT_COUNTS:
        _number(p.get(key), f"{where}.{key}", count=True)
    for key in _STATS:
        stats = _mapping(p.get(key), f"{where}.{key}")
        for stat, value in (stats or {}).items():
            _number(value, f"{where}.{key}.{stat}")
    power = _mapping(p.get("power"), f"{where}.power")
    for key in _POWER_NUMBERS:
        _number((power or {}).get(key), f"{where}.power.{key}")
    metrics = _mapping(p.get("server_metrics"), f"{where}.server_metrics")
    for key in _SERVER_NUMBERS:
        _number((metrics or {}).get(key), f"{where}.server_metrics.{key}")
    _text_list(p.get("errors"), f"{where}.errors")
    _check_point_fleet(p.get("fleet"), f"{where}.fleet")
    samples = p.get("samples")
    if samples is not None:
        if not isinstance(samples, list) or len(samples) > MAX_SAMPLES_PER_POINT:
            raise ValueError(f"{where}.samples must be a list of at most {MAX_SAMPLES_PER_POINT:,} objects")
        for i, s in enumerate(samples):
            if not isinstance(s, Mapping):
                raise ValueError(f"{where}.samples[{i}] must be a JSON object, got {_short(s)}")


def check_run(run: Any) -> None:
    """Every field of a run that is read later has the right type (see the module docstring); ValueError."""
    if not isinstance(run, Mapping):
        raise ValueError(f"run must be a JSON object (dict), got {type(run).__name__}")
    check_depth(run)
    if run.get("schema") != RUN_SCHEMA:
        raise ValueError(f"run.schema must be {RUN_SCHEMA!r}, got {_short(run.get('schema'))}")
    if run.get("status") not in STATUSES:
        raise ValueError(f"run.status must be one of {STATUSES}, got {_short(run.get('status'))}")
    if run.get("weights", "unknown") not in WEIGHTS:
        raise ValueError(f"run.weights must be one of {WEIGHTS}, got {_short(run.get('weights'))}")
    rid = run.get("run_id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, int) or rid < 1):
        raise ValueError(f"run.run_id must be None or an integer >= 1, got {_short(rid)}")
    for key in ("model", "vllm_version", "error", "created_at", "host"):
        _text(run.get(key), f"run.{key}")
    _number(run.get("cold_start_s"), "run.cold_start_s")
    _text_list(run.get("notes"), "run.notes")
    gpu = _mapping(run.get("gpu"), "run.gpu") or {}
    _text(gpu.get("name"), "run.gpu.name")
    count = gpu.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"run.gpu.count must be an integer >= 1 or null, got {_short(count)}")
    server = _mapping(run.get("server"), "run.server") or {}
    _text_list(server.get("serve_args"), "run.server.serve_args")
    for key in ("workload", "settings", "startup", "vocabulary"):
        _mapping(run.get(key), f"run.{key}")
    startup = run.get("startup") or {}
    _number(startup.get("kv_cache_tokens"), "run.startup.kv_cache_tokens", count=True)
    for key in ("weights_gib", "kv_cache_gib"):
        _number(startup.get(key), f"run.startup.{key}")
    points = run.get("points", [])
    if not isinstance(points, list):
        raise ValueError("run.points must be a list of point objects")
    if len(points) > MAX_POINTS:
        raise ValueError(f"run.points has {len(points):,} points, over the limit of {MAX_POINTS:,}")
    for i, p in enumerate(points):
        check_point(p, f"run.points[{i}]")
    if run.get("best_point") is not None:
        check_point(run["best_point"], "run.best_point")
    _check_replay(run.get("replay"))
    _check_run_fleet(run.get("fleet"))


def _check_replay(replay: Any) -> None:
    """``run.replay`` (absent or null for a sweep): the fields of a trace replay have their types.

    >>> _check_replay({"trace_name": "t.jsonl", "sent_requests": 2.5})
    Traceback (most recent call last):
    ...
    ValueError: run.replay.sent_requests must be an integer >= 0 or null, got 2.5
    """
    block = _mapping(replay, "run.replay")
    if block is None:
        return
    for key in _REPLAY_NUMBERS:
        _number(block.get(key), f"run.replay.{key}")
    for key in _REPLAY_COUNTS:
        _number(block.get(key), f"run.replay.{key}", count=True)
    for key in _REPLAY_TEXTS:
        _text(block.get(key), f"run.replay.{key}")
    late = _mapping(block.get("lateness_ms"), "run.replay.lateness_ms")
    for stat, value in (late or {}).items():
        _number(value, f"run.replay.lateness_ms.{stat}")


def _replica_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of replica objects, got {_short(value)}")
    for i, r in enumerate(value):
        if not isinstance(r, Mapping):
            raise ValueError(f"{where}[{i}] must be a JSON object, got {_short(r)}")
    return value


def _check_health(value: Any, where: str) -> None:
    health = _mapping(value, where)
    if health is not None and not isinstance(health.get("ok"), bool):
        raise ValueError(f"{where}.ok must be true or false, got {_short(health.get('ok'))}")


def _check_run_fleet(fleet: Any) -> None:
    """``run.fleet`` (absent or null for one endpoint): the balance policy and each replica's url and health.

    >>> _check_run_fleet({"balance": "round-robin", "replicas": [{"url": "http://a", "health_before": {"ok": 1}}]})
    Traceback (most recent call last):
    ...
    ValueError: run.fleet.replicas[0].health_before.ok must be true or false, got 1
    """
    block = _mapping(fleet, "run.fleet")
    if block is None:
        return
    _text(block.get("balance"), "run.fleet.balance")
    for i, r in enumerate(_replica_list(block.get("replicas"), "run.fleet.replicas")):
        where = f"run.fleet.replicas[{i}]"
        for key in ("url", "model", "vllm_version"):
            _text(r.get(key), f"{where}.{key}")
        _number(r.get("index"), f"{where}.index", count=True)
        for key in ("health_before", "health_after"):
            _check_health(r.get(key), f"{where}.{key}")


def _check_point_fleet(fleet: Any, where: str) -> None:
    """A point's ``fleet`` block: per replica counts, throughput, latency stats and health; the imbalances.

    >>> _check_point_fleet({"replicas": [{"completed": -1}]}, "run.points[0].fleet")
    Traceback (most recent call last):
    ...
    ValueError: run.points[0].fleet.replicas[0].completed must be an integer >= 0 or null, got -1
    """
    block = _mapping(fleet, where)
    if block is None:
        return
    _text(block.get("balance"), f"{where}.balance")
    for key in ("imbalance_requests", "imbalance_output_tps"):
        _number(block.get(key), f"{where}.{key}")
    _number(block.get("unattributed"), f"{where}.unattributed", count=True)
    for i, r in enumerate(_replica_list(block.get("replicas"), f"{where}.replicas")):
        at = f"{where}.replicas[{i}]"
        _text(r.get("url"), f"{at}.url")
        for key in _FLEET_REPLICA_NUMBERS:
            _number(r.get(key), f"{at}.{key}")
        for key in _FLEET_REPLICA_COUNTS:
            _number(r.get(key), f"{at}.{key}", count=True)
        for key in ("ttft_ms", "tpot_ms", "e2el_ms"):
            for stat, value in (_mapping(r.get(key), f"{at}.{key}") or {}).items():
                _number(value, f"{at}.{key}.{stat}")
        _text_list(r.get("errors"), f"{at}.errors")
        _check_health(r.get("health_after"), f"{at}.health_after")
        metrics = _mapping(r.get("server_metrics"), f"{at}.server_metrics")
        for key in _SERVER_NUMBERS:
            _number((metrics or {}).get(key), f"{at}.server_metrics.{key}")
