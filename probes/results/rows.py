"""A run JSON as table rows: the summary columns the listing and its filters read, and the per-request samples
kept apart from the run (so listing 10,000 runs never reads a sample).

>>> run = {"created_at": "2026-11-27T13:00:00+01:00", "gpu": {"name": "NVIDIA H100", "count": 2},
...        "points": [{"concurrency": 1, "output_tokens_per_s": 9.5, "samples": [{"ttft_ms": 3.0}]},
...                   {"concurrency": 4, "output_tokens_per_s": 30.0, "samples": []}]}
>>> cols = summary_columns(run, host="box-1")
>>> (cols["created_utc"], cols["gpu"], cols["gpu_name"], cols["points"], cols["best_output_tokens_per_s"])
('2026-11-27T12:00:00Z', '2× NVIDIA H100', 'NVIDIA H100', 2, 30.0)
>>> bare, samples = split_samples(run)
>>> samples, "samples" in bare["points"][0], bare["points"][1]["samples"]
([(0, [{'ttft_ms': 3.0}])], False, [])
>>> join_samples(bare, samples) == run
True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = ["LIST_COLUMNS", "now_iso", "finite", "gpu_label", "best_tok_s", "utc_text", "day_start",
           "summary_columns", "split_samples", "join_samples"]

LIST_COLUMNS = ("id", "created_at", "host", "model", "gpu", "gpu_name", "weights", "status", "points",
                "best_output_tokens_per_s")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def finite(obj: Any) -> Any:
    """A copy of ``obj`` with non-finite floats replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def gpu_label(gpu: Any) -> str | None:
    """``"2× NVIDIA H100 80GB HBM3"`` (the count only when it is not 1); None without a name."""
    if not isinstance(gpu, Mapping) or not gpu.get("name"):
        return None
    count = gpu.get("count") or 1
    return f"{count}× {gpu['name']}" if count != 1 else str(gpu["name"])


def best_tok_s(run: Mapping[str, Any]) -> float | None:
    best = run.get("best_point")
    if isinstance(best, Mapping) and best.get("output_tokens_per_s") is not None:
        return float(best["output_tokens_per_s"])
    values = [p.get("output_tokens_per_s") for p in run.get("points") or [] if isinstance(p, Mapping)]
    values = [float(v) for v in values if v is not None]
    return max(values) if values else None


def utc_text(created_at: Any, fallback: str) -> str:
    """``created_at`` as sortable UTC text ``YYYY-MM-DDTHH:MM:SSZ`` (naive times count as UTC); ``fallback``
    when it is not an ISO 8601 time.

    >>> utc_text("2026-11-27", "x"), utc_text("yesterday", "2026-12-01T00:00:00Z")
    ('2026-11-27T00:00:00Z', '2026-12-01T00:00:00Z')
    """
    try:
        moment = datetime.fromisoformat(str(created_at).strip())
    except (TypeError, ValueError):
        return fallback
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_start(day: date, *, after: bool = False) -> str:
    """The UTC text of midnight starting ``day`` (or the next day with ``after``): date filters are inclusive.

    >>> day_start(date(2026, 12, 31), after=True)
    '2027-01-01T00:00:00Z'
    """
    return (day + timedelta(days=1 if after else 0)).strftime("%Y-%m-%dT00:00:00Z")


def summary_columns(run: Mapping[str, Any], *, host: str | None) -> dict[str, Any]:
    """The listing columns of one (checked) run, except ``id``."""
    gpu = run.get("gpu") if isinstance(run.get("gpu"), Mapping) else {}
    now = now_iso()
    return {
        "created_at": run.get("created_at") or now,
        "created_utc": utc_text(run.get("created_at"), now),
        "updated_at": now,
        "host": host,
        "model": run.get("model"),
        "gpu": gpu_label(gpu),
        "gpu_name": (gpu or {}).get("name") or None,
        "gpu_count": (gpu or {}).get("count") or (1 if (gpu or {}).get("name") else None),
        "weights": run.get("weights", "unknown"),
        "status": run.get("status"),
        "points": len(run.get("points") or []),
        "best_output_tokens_per_s": best_tok_s(run),
    }


def split_samples(run: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[int, list[Any]]]]:
    """``(run without its non-empty sample lists, [(point_index, samples), ...])``; ``run`` is not modified."""
    bare = dict(run)
    points = run.get("points")
    if not isinstance(points, list):
        return bare, []
    moved: list[tuple[int, list[Any]]] = []
    bare["points"] = []
    for i, point in enumerate(points):
        if isinstance(point, Mapping) and isinstance(point.get("samples"), list) and point["samples"]:
            moved.append((i, point["samples"]))
            point = {k: v for k, v in point.items() if k != "samples"}
        bare["points"].append(point)
    return bare, moved


def join_samples(run: dict[str, Any], samples: Iterable[tuple[int, list[Any]]]) -> dict[str, Any]:
    """Put the samples back into their points (the inverse of :func:`split_samples`)."""
    out = copy.copy(run)
    points = list(out.get("points") or [])
    for i, values in samples:
        if 0 <= i < len(points) and isinstance(points[i], dict):
            points[i] = {**points[i], "samples": values}
    if points:
        out["points"] = points
    return out
