"""Probing a served fleet: several replicas of one model, the load spread over them by the client.

``run --endpoint URL [URL ...]`` (or ``URL,URL``, :func:`split_endpoints`) names replicas without a balancer;
one URL (a single server or a balancer in front of several) behaves as before. A :class:`FleetSpec` carries
the replica URLs and the balancing policy down to :func:`probes.plan.measure.measure_point`, which builds one
:class:`Balancer` per point and hands it to :func:`probes.load.client.run_load` as its replica chooser.

Policies (:class:`Balancer`):

* ``round-robin`` (default): replica ``0, 1, ..., n-1, 0, ...`` in send order;
* ``least-inflight``: the replica with the fewest requests in flight right now, ties by replica order (so at
  concurrency 1 every request goes to replica 0: nothing is ever in flight when the next one is sent).

Both skip an *ejected* replica: after :data:`EJECT_AFTER` consecutive failed requests a replica takes no more
requests for the rest of the point (a passive health check, as a load balancer's outlier detection does); if
every replica is ejected, all take requests again (their failures are data). Without it a dead replica under
least-inflight would draw every request (nothing stays in flight on a replica that refuses connections).
A new point starts with every replica in.

Per point, :func:`fleet_point` groups the request records by the replica they went to and summarises each
group exactly as the whole point (:func:`probes.load.metrics.summarize` over the point's wall time, so the
replicas' throughputs add up to the total), with each replica's ``/health`` after the point and its own
``/metrics`` deltas. ``imbalance_requests`` = max / min of the replicas' completed requests and
``imbalance_output_tps`` = the same for output tok/s: 1.0 is perfectly even, 2.0 means the busiest replica did
twice the least busy one's work; None when a replica completed nothing (the ratio is unbounded: see
``idle_replicas``) or there is one replica.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from probes.load.client import RequestResult
from probes.load.metrics import summarize

__all__ = ["BALANCE_POLICIES", "EJECT_AFTER", "FleetSpec", "Balancer", "split_endpoints", "check_health",
           "imbalance", "fleet_point", "describe_fleet", "fleet_run_block", "finish_fleet_run"]

BALANCE_POLICIES = ("round-robin", "least-inflight")
EJECT_AFTER = 3
_HEALTH_TIMEOUT_S = 3.0


def _normalise(url: str) -> str:
    url = url.strip().rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def split_endpoints(values: str | Sequence[str]) -> tuple[str, ...]:
    """Replica URLs from ``--endpoint`` values: each value may hold several, split on commas or spaces;
    trailing ``/`` and ``/v1`` dropped. ValueError for none or a repeated URL (named).

    >>> split_endpoints(["http://a:1/v1,http://b:2/", "http://c:3"])
    ('http://a:1', 'http://b:2', 'http://c:3')
    >>> split_endpoints("http://a:1 http://a:1/v1")
    Traceback (most recent call last):
    ...
    ValueError: --endpoint http://a:1 is given twice: name each replica once
    """
    items = [values] if isinstance(values, str) else list(values)
    urls = [_normalise(part) for item in items for part in item.replace(",", " ").split() if part.strip()]
    if not urls:
        raise ValueError("--endpoint needs at least one URL")
    for url, n in Counter(urls).items():
        if n > 1:
            raise ValueError(f"--endpoint {url} is given twice: name each replica once")
    return tuple(urls)


@dataclass(frozen=True)
class FleetSpec:
    """The replicas a point's load is spread over, and how (one of :data:`BALANCE_POLICIES`)."""

    urls: tuple[str, ...]
    balance: str = "round-robin"

    def __post_init__(self) -> None:
        if len(self.urls) < 2:
            raise ValueError(f"a fleet needs at least 2 replica URLs, got {len(self.urls)}")
        if self.balance not in BALANCE_POLICIES:
            raise ValueError(f"--balance must be one of {', '.join(BALANCE_POLICIES)}, got {self.balance!r}")


class Balancer:
    """Chooses the replica of each request (see the module docstring); used from one event loop.

    :meth:`choose` counts the request in flight on the replica it returns; :meth:`release` takes it out and
    records whether it succeeded (``ok=None``: cancelled, not counted either way).

    >>> b = Balancer(["u0", "u1", "u2"], "least-inflight")
    >>> first, second = b.choose(), b.choose()
    >>> b.release(first, ok=True)
    >>> first, second, b.choose(), b.in_flight
    (0, 1, 0, [1, 1, 0])
    """

    def __init__(self, urls: Sequence[str], policy: str = "round-robin", *, eject_after: int = EJECT_AFTER) -> None:
        if not urls:
            raise ValueError("a balancer needs at least one replica URL")
        if policy not in BALANCE_POLICIES:
            raise ValueError(f"balance policy must be one of {', '.join(BALANCE_POLICIES)}, got {policy!r}")
        if eject_after < 1:
            raise ValueError(f"eject_after must be >= 1, got {eject_after}")
        self.urls = tuple(urls)
        self.policy = policy
        self.eject_after = eject_after
        n = len(self.urls)
        self.in_flight = [0] * n
        self.sent = [0] * n
        self.ejected = [False] * n
        self._failures_in_row = [0] * n
        self._next = 0

    def choose(self) -> int:
        """The replica for the next request (counted in flight there)."""
        n = len(self.urls)
        live = [i for i in range(n) if not self.ejected[i]] or list(range(n))
        if self.policy == "round-robin":
            i = next((self._next + k) % n for k in range(n) if (self._next + k) % n in live)
            self._next = (i + 1) % n
        else:
            i = min(live, key=lambda j: (self.in_flight[j], j))
        self.in_flight[i] += 1
        self.sent[i] += 1
        return i

    def release(self, i: int, *, ok: bool | None) -> None:
        """Request on replica ``i`` finished (``ok``) or was cancelled (``None``)."""
        self.in_flight[i] -= 1
        if ok is None:
            return
        self._failures_in_row[i] = 0 if ok else self._failures_in_row[i] + 1
        if self._failures_in_row[i] >= self.eject_after:
            self.ejected[i] = True


def check_health(url: str, *, timeout_s: float = _HEALTH_TIMEOUT_S) -> dict[str, Any]:
    """``GET {url}/health`` within ``timeout_s``: ``{"ok": bool, "status": HTTP code or None, "error": str}``
    (a server without ``/health``, HTTP 404, is asked ``/v1/models`` instead; never raises)."""
    try:
        r = requests.get(f"{url}/health", timeout=timeout_s)
        if r.status_code == 404:
            r = requests.get(f"{url}/v1/models", timeout=timeout_s)
    except requests.RequestException as exc:
        return {"ok": False, "status": None, "error": type(exc).__name__}
    return {"ok": r.status_code == 200, "status": r.status_code,
            "error": "" if r.status_code == 200 else f"HTTP {r.status_code}"}


def imbalance(values: Sequence[float]) -> float | None:
    """max / min of per-replica values (1.0 = even); None for fewer than 2 replicas or a zero minimum.

    >>> imbalance([10, 5]), imbalance([3, 3, 3]), imbalance([4, 0]), imbalance([7])
    (2.0, 1.0, None, None)
    """
    if len(values) < 2 or min(values) <= 0:
        return None
    return float(max(values)) / float(min(values))


def _stats(s: Any, completed: int) -> dict[str, float | None]:
    """Median, p99 and mean; None for a replica that completed nothing (no latency to report, not 0 ms)."""
    if not completed:
        return {"median": None, "p99": None, "mean": None}
    return {"median": s.median, "p99": s.p99, "mean": s.mean}


def fleet_point(results: Sequence[RequestResult], duration_s: float, urls: Sequence[str], *, balance: str,
                ejected: Sequence[bool] = (), health_after: Sequence[Mapping[str, Any]] = (),
                server_metrics: Sequence[Mapping[str, Any] | None] = ()) -> dict[str, Any]:
    """The point's ``fleet`` block: one entry per replica and the imbalance between them (module docstring).

    Records with ``replica`` None (cancelled before a replica answered) belong to no replica and are counted
    in ``unattributed``. ``failed_replicas``: replicas with a failed request, an ejection or an unhealthy
    ``/health`` after the point.
    """
    groups: dict[int, list[RequestResult]] = {i: [] for i in range(len(urls))}
    unattributed = 0
    for r in results:
        if r.replica is None or r.replica not in groups:
            unattributed += 1
        else:
            groups[r.replica].append(r)
    replicas = []
    for i, url in enumerate(urls):
        m = summarize(groups[i], duration_s)
        health = dict(health_after[i]) if i < len(health_after) else None
        replicas.append({
            "index": i, "url": url, "sent": len(groups[i]), "completed": m.completed, "failed": m.failed,
            "output_tokens_per_s": m.output_tokens_per_s, "requests_per_s": m.requests_per_s,
            "ttft_ms": _stats(m.ttft_ms, m.completed), "tpot_ms": _stats(m.tpot_ms, m.completed),
            "e2el_ms": _stats(m.e2el_ms, m.completed),
            "errors": list(m.errors), "ejected": bool(ejected[i]) if i < len(ejected) else False,
            "health_after": health,
            "server_metrics": dict(server_metrics[i]) if i < len(server_metrics) and server_metrics[i] else None,
        })
    completed = [r["completed"] for r in replicas]
    failed = [r["index"] for r in replicas
              if r["failed"] or r["ejected"] or (r["health_after"] is not None and not r["health_after"]["ok"])]
    return {"balance": balance, "replicas": replicas, "unattributed": unattributed,
            "imbalance_requests": imbalance(completed),
            "imbalance_output_tps": imbalance([r["output_tokens_per_s"] for r in replicas]),
            "idle_replicas": [r["index"] for r in replicas if r["completed"] == 0],
            "failed_replicas": failed}


def _fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def describe_fleet(run: Mapping[str, Any]) -> list[str]:
    """Lines for the CLI table: the replicas with their health before/after the run, then per point one row per
    replica and the imbalance (empty for a run against one endpoint)."""
    fleet = run.get("fleet")
    if not isinstance(fleet, Mapping):
        return []

    def health(h: Any) -> str:
        return "-" if not isinstance(h, Mapping) else ("ok" if h.get("ok") else f"DOWN ({h.get('error') or '?'})")

    lines = [f"fleet: {len(fleet.get('replicas', []))} replicas, balance {fleet.get('balance')} "
             "(imbalance = busiest / least busy replica; 1.00 is even)"]
    for r in fleet.get("replicas", []):
        lines.append(f"  replica {r.get('index')}: {r.get('url')}  health before {health(r.get('health_before'))}, "
                     f"after {health(r.get('health_after'))}")
    head = f"  {'point':>12} {'replica':>7} {'sent':>5} {'ok':>5} {'fail':>4} {'out tok/s':>10} {'TTFT med':>9} " \
           f"{'TTFT p99':>9} {'TPOT med':>9} {'TPOT p99':>9}"
    lines.append(head)
    for p in run.get("points", []):
        block = p.get("fleet")
        if not isinstance(block, Mapping):
            continue
        label = (f"rate {p['request_rate']:.3g}" if p.get("request_rate") is not None
                 else f"conc {p.get('concurrency') or '-'}")
        for r in block.get("replicas", []):
            flag = " ejected" if r.get("ejected") else ""
            lines.append(f"  {label:>12} {r['index']:>7} {r['sent']:>5} {r['completed']:>5} {r['failed']:>4} "
                         f"{_fmt(r['output_tokens_per_s']):>10} {_fmt(r['ttft_ms']['median']):>9} "
                         f"{_fmt(r['ttft_ms']['p99']):>9} {_fmt(r['tpot_ms']['median'], 2):>9} "
                         f"{_fmt(r['tpot_ms']['p99'], 2):>9}{flag}")
        idle = block.get("idle_replicas") or []
        ratio = ("unbounded: replica(s) " + ", ".join(map(str, idle)) + " completed nothing") if idle else (
            f"requests {_fmt(block.get('imbalance_requests'), 2)}x, output tok/s "
            f"{_fmt(block.get('imbalance_output_tps'), 2)}x")
        failed = block.get("failed_replicas") or []
        lines.append(f"  {label:>12} imbalance {ratio}"
                     + (f"; failing replica(s): {', '.join(map(str, failed))}" if failed else ""))
    return lines


def fleet_run_block(replicas: Sequence[tuple[str, str, str | None]], balance: str) -> dict[str, Any]:
    """The run's ``fleet`` block at attach time: per replica (url, model, vLLM version) and ``/health`` now."""
    return {"balance": balance, "replicas": [
        {"index": i, "url": url, "model": model, "vllm_version": version, "health_before": check_health(url),
         "health_after": None} for i, (url, model, version) in enumerate(replicas)]}


def finish_fleet_run(run: dict[str, Any]) -> None:
    """After the load: each replica's ``/health`` again, and a note naming every replica that failed requests,
    was ejected or is unhealthy (the run itself keeps its status: the other replicas' results stand)."""
    fleet = run.get("fleet")
    if not isinstance(fleet, dict):
        return
    notes = run.setdefault("notes", [])
    for r in fleet["replicas"]:
        r["health_after"] = check_health(r["url"])
        failed = sum(p["fleet"]["replicas"][r["index"]]["failed"] for p in run.get("points", [])
                     if isinstance(p.get("fleet"), Mapping))
        ejected = any(p["fleet"]["replicas"][r["index"]]["ejected"] for p in run.get("points", [])
                      if isinstance(p.get("fleet"), Mapping))
        why = [f"{failed} failed request(s)"] if failed else []
        why += ["ejected after consecutive failures"] if ejected else []
        why += [f"/health {r['health_after']['error'] or 'failed'} after the run"] if not r["health_after"]["ok"] else []
        if why:
            notes.append(f"replica {r['index']} ({r['url']}) failed: {', '.join(why)}")
