"""What bounds the load client itself: open files, its own CPU, and how many worker processes to use.

* **Open files.** Each stream holds one socket; at 1,024 streams the common soft limit (``ulimit -n 1024``)
  is hit (8 of 1,024 requests failed there). :func:`raise_nofile_limit` raises ``RLIMIT_NOFILE``'s soft limit
  to its hard limit (never above it, no privileges needed) and says what it found.
* **CPU.** :class:`CpuMeter` reads ``time.thread_time()`` (CPU seconds of the calling thread, i.e. the event
  loop, which is what pins a core) and ``time.perf_counter()`` around a run. In the Streamlit process the
  loop runs in a thread beside the UI, the power and ``/metrics`` samplers: ``process_time`` would count
  those too. ``cpu_fraction = cpu_s / wall_s`` (1.0 = one core busy the whole run). Above
  :data:`CLIENT_BOUND_CPU_FRACTION` (0.7) the client, not the server, may be setting the pace: the point is
  flagged ``client_bound``. With N worker processes each worker's loop is one core: the point's fraction is
  the busiest worker's.
* **Workers.** :func:`auto_workers` is the documented automatic choice for ``run_load(workers=None)``.

>>> CpuUsage(cpu_s=0.35, wall_s=0.5).cpu_fraction, CpuUsage(cpu_s=0.35, wall_s=0.5).client_bound
(0.7, False)
>>> CpuUsage(cpu_s=0.9, wall_s=1.0).client_bound
True
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

__all__ = [
    "CLIENT_BOUND_CPU_FRACTION",
    "STREAMS_PER_WORKER",
    "REQUESTS_PER_S_PER_WORKER",
    "MAX_AUTO_WORKERS",
    "NofileLimit",
    "CpuUsage",
    "CpuMeter",
    "raise_nofile_limit",
    "auto_workers",
    "usable_cpus",
]

CLIENT_BOUND_CPU_FRACTION = 0.7
STREAMS_PER_WORKER = 256
REQUESTS_PER_S_PER_WORKER = 500.0
MAX_AUTO_WORKERS = 8


@dataclass(frozen=True)
class NofileLimit:
    """``RLIMIT_NOFILE`` before and after :func:`raise_nofile_limit` (``None`` where the platform has none)."""

    soft_before: int | None
    soft: int | None
    hard: int | None
    error: str = ""


def _as_count(value: int) -> int | None:
    """``RLIM_INFINITY`` as ``None`` (no limit)."""
    import resource

    return None if value == resource.RLIM_INFINITY else int(value)


def raise_nofile_limit() -> NofileLimit:
    """Raise the soft open-file limit to the hard limit; never raises (a refusal is recorded in ``error``).

    Idempotent: a second call finds soft == hard and changes nothing. With an unlimited hard limit the soft
    limit is left as it is (macOS refuses ``RLIM_INFINITY`` for files; a finite soft limit was enough so far).
    """
    try:
        import resource
    except ImportError:  # Windows
        return NofileLimit(None, None, None, "no RLIMIT_NOFILE on this platform")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or (soft != resource.RLIM_INFINITY and soft >= hard):
        return NofileLimit(_as_count(soft), _as_count(soft), _as_count(hard))
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        return NofileLimit(_as_count(soft), _as_count(soft), _as_count(hard), f"{type(exc).__name__}: {exc}")
    return NofileLimit(_as_count(soft), _as_count(hard), _as_count(hard))


@dataclass(frozen=True)
class CpuUsage:
    """CPU seconds one event-loop thread used over ``wall_s`` seconds of a run."""

    cpu_s: float
    wall_s: float

    @property
    def cpu_fraction(self) -> float:
        """``cpu_s / wall_s`` (0.0 for a zero-length run)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def client_bound(self) -> bool:
        """True when the loop was busy more than :data:`CLIENT_BOUND_CPU_FRACTION` of the run."""
        return self.cpu_fraction > CLIENT_BOUND_CPU_FRACTION


class CpuMeter:
    """``with CpuMeter() as m: ...`` then ``m.usage``: this thread's CPU and the wall time inside the block."""

    def __init__(self) -> None:
        self._cpu0 = self._wall0 = 0.0
        self.usage = CpuUsage(0.0, 0.0)

    def __enter__(self) -> CpuMeter:
        self._cpu0, self._wall0 = time.thread_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.usage = CpuUsage(time.thread_time() - self._cpu0, time.perf_counter() - self._wall0)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def auto_workers(
    concurrency: int | None, request_rate: float, num_requests: int, cpus: int | None = None
) -> int:
    """Worker processes for a run: one per 256 streams in flight or per 500 requests/s, at most half the CPUs.

    streams = min(concurrency, n) when capped, n for an uncapped burst (rate inf), 0 for uncapped open loop;
    workers = clamp(max(ceil(streams / 256), ceil(rate / 500)), 1, min(8, cpus // 2, streams or n)).
    Half the CPUs because the server under test (vLLM's API process, or the fake server of the benchmark) and
    the app need the rest; one stream per worker at least. One loop spends about 3-8 µs of CPU per token
    (``benchmarks/README.md``, client headroom): 130k tok/s or more per core, far above a GPU's few thousand,
    so most runs stay at 1.

    >>> auto_workers(64, math.inf, 192, cpus=16), auto_workers(1024, math.inf, 3072, cpus=16)
    (1, 4)
    >>> auto_workers(None, 2000.0, 10000, cpus=16), auto_workers(1024, math.inf, 3072, cpus=2)
    (4, 1)
    """
    if num_requests < 1:
        return 1
    cpus = usable_cpus() if cpus is None else cpus
    if concurrency is not None:
        streams = min(concurrency, num_requests)
    else:
        streams = num_requests if math.isinf(request_rate) else 0
    want = math.ceil(streams / STREAMS_PER_WORKER)
    if not math.isinf(request_rate):
        want = max(want, math.ceil(request_rate / REQUESTS_PER_S_PER_WORKER))
    cap = min(MAX_AUTO_WORKERS, cpus // 2, streams or num_requests)
    return max(1, min(want, cap))
