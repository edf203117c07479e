"""``vllm bench serve --save-result`` files as probe runs: one point per JSON object (one object per line with
``--append-result``), ``weights="unknown"``; per-request samples when the file was saved with
``--save-detailed``. Untrusted text: every failure is a one-line ``ValueError`` (limits in
:mod:`probes.results.schema`).

>>> run = vllm_bench_to_run({"completed": 4, "duration": 2.0, "output_throughput": 50.0,
...                          "request_throughput": 2.0, "max_concurrency": 4, "model_id": "m"})
>>> (run["model"], run["points"][0]["concurrency"], run["best_point"]["output_tokens_per_s"])
('m', 4, 50.0)
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from probes.results.schema import RUN_SCHEMA, check_point, check_size, parse_json

__all__ = ["vllm_bench_to_run"]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _load_bench(data: Mapping[str, Any] | str | os.PathLike[str]) -> list[dict[str, Any]]:
    if isinstance(data, Mapping):
        return [dict(data)]
    if isinstance(data, os.PathLike) or (isinstance(data, str) and not data.lstrip().startswith("{")):
        try:
            check_size(os.stat(data).st_size, os.fspath(data))
            text = Path(data).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read vllm bench result file {os.fspath(data)!r}: {exc}") from None
    else:
        text = data
    check_size(len(text))
    try:
        objects = [parse_json(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        try:
            objects = [parse_json(text)]
        except ValueError as exc:
            reason = str(exc)
            reason = ("(invalid JSON): " + reason.removeprefix("not valid JSON: ")
                      if reason.startswith("not valid JSON: ") else ": " + reason)
            raise ValueError(f"not a vllm bench serve result{' ' if reason[0] == '(' else ''}{reason}") from None
    if not objects or not all(isinstance(o, dict) for o in objects):
        raise ValueError("not a vllm bench serve result: expected one JSON object per line")
    return objects


def _stats(result: Mapping[str, Any], metric: str) -> dict[str, float | None]:
    return {stat: result.get(f"{stat}_{metric}_ms") for stat in ("mean", "median", "p90", "p99", "std")}


def _bench_samples(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    ttfts = r.get("ttfts")
    if not isinstance(ttfts, list):
        return []  # saved without --save-detailed
    n = len(ttfts)
    errors = r.get("errors") or [""] * n
    starts = r.get("start_times") or [0.0] * n
    t0 = min(starts) if starts else 0.0
    return [
        {
            "index": i,
            "success": not errors[i],
            "error": errors[i],
            "prompt_tokens": (r.get("input_lens") or [0] * n)[i],
            "output_tokens": (r.get("output_lens") or [0] * n)[i],
            "ttft_ms": ttfts[i] * 1000.0,
            "latency_ms": (r.get("latencies") or [0.0] * n)[i] * 1000.0,
            "itl_ms": [x * 1000.0 for x in (r.get("itls") or [[]] * n)[i]],
            "start_s": starts[i] - t0,
        }
        for i in range(n)
    ]


def _bench_point(r: Mapping[str, Any]) -> dict[str, Any]:
    for key in ("completed", "duration", "output_throughput", "request_throughput"):
        if key not in r:
            raise ValueError(f"not a vllm bench serve result: the field {key!r} is missing")
    rate = r.get("request_rate")
    errors = Counter(e for e in r.get("errors") or [] if e)
    failed = r.get("failed")
    if failed is None and r.get("num_prompts") is not None:
        failed = int(r["num_prompts"]) - int(r["completed"])
    return {
        "concurrency": r.get("max_concurrency"),
        "request_rate": None if rate in (None, "inf") or not math.isfinite(float(rate)) else float(rate),
        "output_tokens_per_s": r["output_throughput"],
        "requests_per_s": r["request_throughput"],
        "total_tokens_per_s": r.get("total_token_throughput"),
        "goodput_requests_per_s": r.get("request_goodput"),
        "ttft_ms": _stats(r, "ttft"),
        "tpot_ms": _stats(r, "tpot"),
        "itl_ms": _stats(r, "itl"),
        "e2el_ms": _stats(r, "e2el"),
        "completed": r["completed"],
        "failed": failed,
        "duration_s": r["duration"],
        "total_input_tokens": r.get("total_input_tokens"),
        "total_output_tokens": r.get("total_output_tokens"),
        "errors": [f"{n}× {msg.strip().splitlines()[-1]}" for msg, n in errors.most_common(10)],
        "server_metrics": None,
        "power": None,
        "samples": _bench_samples(r),
    }


def vllm_bench_to_run(data: Mapping[str, Any] | str | os.PathLike[str], *, label: str = "") -> dict[str, Any]:
    """A run JSON from a ``vllm bench serve --save-result`` file: one point per JSON object (line).

    A file of the right shape with wrong types inside (``"completed": null``, ``"errors": [1]``) is a
    ``ValueError`` that says so, never a ``TypeError`` from deep inside.
    """
    results = _load_bench(data)
    try:
        points = [_bench_point(r) for r in results]
        for i, p in enumerate(points):
            check_point(p, f"result[{i}]")
        completed = sum(int(p["completed"]) for p in points) or 1
    except (TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"not a valid vllm bench serve result: {type(exc).__name__}: {exc}") from exc
    first = results[0]
    ok = [p for p in points if not p["failed"] and p["completed"]]
    best = max(ok, key=lambda p: p["output_tokens_per_s"] or 0.0) if ok else None
    label = label or first.get("label") or ""
    return {
        "schema": RUN_SCHEMA,
        "run_id": None,
        "created_at": _now_iso(),
        "status": "complete",
        "error": None,
        "gpu": None,
        "model": first.get("model_id") or "unknown",
        "weights": "unknown",
        "vllm_version": None,
        "cold_start_s": None,
        "server": {"mode": "endpoint", "base_url": None, "argv": [], "serve_args": []},
        "workload": {
            "input_tokens": round(sum(p["total_input_tokens"] or 0 for p in points) / completed),
            "output_tokens": round(sum(p["total_output_tokens"] or 0 for p in points) / completed),
            "num_requests": first.get("num_prompts"),
        },
        "settings": {
            "concurrency": [p["concurrency"] for p in points],
            "request_rate": points[0]["request_rate"],
            "burstiness": first.get("burstiness"),
            "backend": first.get("backend"),
            "label": label,
        },
        "points": points,
        "best_point": {k: v for k, v in best.items() if k != "samples"} if best else None,
        "notes": [
            f"imported from `vllm bench serve --save-result` ({first.get('date', 'undated')}"
            f"{', label ' + label if label else ''}); GPU, weights and vLLM version were not recorded there",
        ],
    }
