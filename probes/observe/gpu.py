"""GPU inspection and power sampling: the ONLY module that imports ``pynvml`` (from ``nvidia-ml-py``).

Like gpustat's ``safenvml``: every NVML call is wrapped so that an ``NVMLError`` becomes ``None`` for that
field; a GPU whose handle cannot be read is kept with ``error`` set instead of failing the whole query; a
machine without the library, driver or devices gets ``GpuSnapshot(available=False, reason="no NVIDIA GPU
visible: ...")``, never an exception.

Units: ``Mib = int`` (memory), ``Watts = float``, ``Celsius = int``, ``Mhz = int``.
Energy of a run: the sum over GPUs of the trapezoid integral of sampled power,
``E = sum_i (t[i+1] - t[i]) * (P[i] + P[i+1]) / 2`` (joules), or, where every GPU has NVML's total-energy
counter (Volta and later), the difference of that counter (mJ / 1000), which misses no spikes.

>>> trapezoid_energy_j([0.0, 1.0, 3.0], [100.0, 200.0, 200.0])
550.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "GpuInfo",
    "GpuSnapshot",
    "inspect",
    "snapshot_to_dict",
    "gpu_summary",
    "PowerSampler",
    "trapezoid_energy_j",
]

Mib = int
Watts = float

_NO_GPU = "no NVIDIA GPU visible: "


@dataclass(frozen=True)
class GpuInfo:
    """One GPU; any field NVML could not read is None."""

    index: int
    name: str | None = None
    uuid: str | None = None
    memory_total_mib: Mib | None = None
    memory_used_mib: Mib | None = None
    utilization_pct: int | None = None
    power_w: Watts | None = None
    power_limit_w: Watts | None = None
    temperature_c: int | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    processes: tuple[tuple[int, str | None, Mib | None], ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class GpuSnapshot:
    """All GPUs at one moment. ``available`` False comes with a ``reason`` for the user."""

    available: bool
    reason: str = ""
    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: tuple[GpuInfo, ...] = ()


def _load_nvml() -> ModuleType | None:
    try:
        import pynvml  # noqa: PLC0415 - this module is the only importer
    except ImportError:
        return None
    return pynvml


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Nvml:
    """Call NVML functions by name with NVMLError (or a missing function) -> None."""

    def __init__(self, module: ModuleType):
        self.m = module
        self.err: type[BaseException] = getattr(module, "NVMLError", Exception)

    def __call__(self, name: str, *args: Any) -> Any:
        fn = getattr(self.m, name, None)
        if fn is None:
            return None
        try:
            return fn(*args)
        except self.err:
            return None


def _cuda_version(raw: Any) -> str | None:
    """NVML's int (12040) -> "12.4".

    >>> _cuda_version(12040), _cuda_version(None)
    ('12.4', None)
    """
    if not isinstance(raw, int) or raw <= 0:
        return None
    return f"{raw // 1000}.{(raw % 1000) // 10}"


def _process_name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() or None
    except OSError:
        return None


def _gpu(nv: _Nvml, index: int) -> GpuInfo:
    handle = nv("nvmlDeviceGetHandleByIndex", index)
    if handle is None:
        return GpuInfo(index=index, error="NVML could not open this GPU (lost, or not permitted)")
    mem = nv("nvmlDeviceGetMemoryInfo", handle)
    util = nv("nvmlDeviceGetUtilizationRates", handle)
    power = nv("nvmlDeviceGetPowerUsage", handle)
    limit = nv("nvmlDeviceGetEnforcedPowerLimit", handle)
    procs = []
    for p in nv("nvmlDeviceGetComputeRunningProcesses", handle) or ():
        used = getattr(p, "usedGpuMemory", None)
        procs.append((int(p.pid), _process_name(int(p.pid)), int(used) // 2**20 if isinstance(used, int) else None))
    name = nv("nvmlDeviceGetName", handle)
    uuid = nv("nvmlDeviceGetUUID", handle)
    return GpuInfo(
        index=index,
        name=_text(name) if name is not None else None,
        uuid=_text(uuid) if uuid is not None else None,
        memory_total_mib=int(mem.total) // 2**20 if mem is not None else None,
        memory_used_mib=int(mem.used) // 2**20 if mem is not None else None,
        utilization_pct=int(util.gpu) if util is not None else None,
        power_w=power / 1000.0 if power is not None else None,
        power_limit_w=limit / 1000.0 if limit is not None else None,
        temperature_c=nv("nvmlDeviceGetTemperature", handle, getattr(nv.m, "NVML_TEMPERATURE_GPU", 0)),
        sm_clock_mhz=nv("nvmlDeviceGetClockInfo", handle, getattr(nv.m, "NVML_CLOCK_SM", 1)),
        mem_clock_mhz=nv("nvmlDeviceGetClockInfo", handle, getattr(nv.m, "NVML_CLOCK_MEM", 2)),
        processes=tuple(procs),
    )


def inspect(*, nvml: ModuleType | None = None) -> GpuSnapshot:
    """Read every GPU once. Never raises for a missing library, driver or device (``available=False``)."""
    module = nvml if nvml is not None else _load_nvml()
    if module is None:
        return GpuSnapshot(False, _NO_GPU + "the nvidia-ml-py package (pynvml) is not installed")
    nv = _Nvml(module)
    try:
        module.nvmlInit()
    except nv.err as exc:
        return GpuSnapshot(False, _NO_GPU + f"NVIDIA driver not available ({_text(exc) or type(exc).__name__})")
    except OSError as exc:
        return GpuSnapshot(False, _NO_GPU + f"NVIDIA driver library could not be loaded ({exc})")
    try:
        count = nv("nvmlDeviceGetCount")
        driver = nv("nvmlSystemGetDriverVersion")
        cuda = _cuda_version(nv("nvmlSystemGetCudaDriverVersion"))
        if not count:
            return GpuSnapshot(False, _NO_GPU + "the driver reports no devices",
                               driver_version=_text(driver) if driver else None, cuda_version=cuda)
        gpus = tuple(_gpu(nv, i) for i in range(int(count)))
        return GpuSnapshot(True, "", _text(driver) if driver else None, cuda, gpus)
    finally:
        nv("nvmlShutdown")


def snapshot_to_dict(s: GpuSnapshot) -> dict[str, Any]:
    """JSON-ready dict of a snapshot (processes as lists)."""
    out = asdict(s)
    out["gpus"] = [{**g, "processes": [list(p) for p in g["processes"]]} for g in out["gpus"]]
    return out


def gpu_summary(s: GpuSnapshot, indices: Sequence[int] | None = None) -> dict[str, Any] | None:
    """The run JSON's ``gpu`` block: name, count, driver/CUDA versions, memory of the first GPU; None if no GPU.

    >>> gpu_summary(GpuSnapshot(True, "", "550.1", "12.4", (GpuInfo(0, "H100", memory_total_mib=81559),)))
    {'name': 'H100', 'count': 1, 'driver_version': '550.1', 'cuda_version': '12.4', 'memory_total_mib': 81559}
    """
    if not s.available or not s.gpus:
        return None
    gpus = [g for g in s.gpus if indices is None or g.index in indices] or list(s.gpus)
    return {"name": gpus[0].name, "count": len(gpus), "driver_version": s.driver_version,
            "cuda_version": s.cuda_version, "memory_total_mib": gpus[0].memory_total_mib}


def trapezoid_energy_j(times_s: Sequence[float], watts: Sequence[float]) -> float:
    """Energy in joules of a sampled power curve (trapezoid rule); 0.0 with fewer than two samples."""
    if len(times_s) != len(watts):
        raise ValueError("times_s and watts must have the same length")
    return float(sum((times_s[i + 1] - times_s[i]) * (watts[i] + watts[i + 1]) / 2 for i in range(len(watts) - 1)))


@dataclass
class PowerSample:
    """One sampling instant: seconds since start, and per GPU (index, power_w, utilization_pct, memory_used_mib)."""

    t_s: float
    gpus: list[tuple[int, float | None, int | None, int | None]] = field(default_factory=list)


class PowerSampler:
    """Background thread sampling power, utilization and memory of GPUs every ``interval_s``.

    ``summary()`` gives ``{"mean_w", "peak_w", "energy_j", "gpus", "samples", "energy_source"}`` or None when no
    GPU is visible. Use as ``with PowerSampler() as ps: ...``.
    """

    def __init__(self, interval_s: float = 0.5, *, indices: Sequence[int] | None = None,
                 nvml: ModuleType | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.indices = tuple(indices) if indices is not None else None
        self.samples: list[PowerSample] = []
        self._module = nvml if nvml is not None else _load_nvml()
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handles: list[tuple[int, Any]] = []
        self._nv: _Nvml | None = None
        self._t0 = 0.0
        self._energy_start: list[int | None] = []
        self._energy_end: list[int | None] = []
        self.available = False

    def _open(self) -> None:
        if self._module is None:
            return
        nv = _Nvml(self._module)
        try:
            self._module.nvmlInit()
        except (nv.err, OSError):
            return
        count = nv("nvmlDeviceGetCount") or 0
        for i in range(int(count)):
            if self.indices is None or i in self.indices:
                h = nv("nvmlDeviceGetHandleByIndex", i)
                if h is not None:
                    self._handles.append((i, h))
        self._nv = nv
        self.available = bool(self._handles)

    def _energy(self) -> list[int | None]:
        assert self._nv is not None
        return [self._nv("nvmlDeviceGetTotalEnergyConsumption", h) for _, h in self._handles]

    def sample_once(self) -> PowerSample:
        """Read every GPU now and append the sample."""
        assert self._nv is not None
        row = PowerSample(self._clock() - self._t0)
        for i, h in self._handles:
            p = self._nv("nvmlDeviceGetPowerUsage", h)
            u = self._nv("nvmlDeviceGetUtilizationRates", h)
            m = self._nv("nvmlDeviceGetMemoryInfo", h)
            row.gpus.append((i, p / 1000.0 if p is not None else None, int(u.gpu) if u is not None else None,
                             int(m.used) // 2**20 if m is not None else None))
        self.samples.append(row)
        return row

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_once()

    def start(self) -> PowerSampler:
        self._open()
        self._t0 = self._clock()
        if self.available:
            self._energy_start = self._energy()
            self.sample_once()
            self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5.0)
            self._thread = None
        if self.available and self._nv is not None:
            self.sample_once()
            self._energy_end = self._energy()
            self._nv("nvmlShutdown")
            self._nv = None

    def __enter__(self) -> PowerSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def summary(self) -> dict[str, Any] | None:
        """Totals over all sampled GPUs; None when nothing was sampled (no GPU)."""
        if not self.available or len(self.samples) < 1:
            return None
        times = [s.t_s for s in self.samples]
        totals = [sum(p for _, p, _, _ in s.gpus if p is not None) for s in self.samples]
        energy = trapezoid_energy_j(times, totals)
        source = "power samples (trapezoid)"
        if self._energy_start and self._energy_end and all(
                a is not None and b is not None for a, b in zip(self._energy_start, self._energy_end, strict=True)):
            energy = sum(b - a for a, b in zip(self._energy_start, self._energy_end, strict=True)) / 1000.0
            source = "NVML total energy counter"
        duration = times[-1] - times[0]
        mean_w = energy / duration if duration > 0 else (totals[0] if totals else None)
        utils = [u for s in self.samples for _, _, u, _ in s.gpus if u is not None]
        return {"mean_w": mean_w, "peak_w": max(totals) if totals else None, "energy_j": energy,
                "duration_s": duration, "gpus": len(self._handles), "samples": len(self.samples),
                "mean_utilization_pct": sum(utils) / len(utils) if utils else None, "energy_source": source}

