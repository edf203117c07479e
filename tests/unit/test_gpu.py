"""probes.observe.gpu over scripted fake ``pynvml`` modules (no GPU here), scenarios named after what they reproduce."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from probes.observe import gpu


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's naming
    pass


class FakeNvml:
    """A scripted pynvml: ``devices`` is a list of dicts; a field set to an exception class raises it."""

    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(self, devices: list[dict[str, Any]], *, init_error: BaseException | None = None,
                 driver: Any = b"550.54.15", cuda: int = 12040) -> None:
        self.devices, self.init_error, self.driver, self.cuda = devices, init_error, driver, cuda
        self.shutdowns = 0

    def _field(self, h: int, name: str) -> Any:
        value = self.devices[h][name]
        if isinstance(value, type) and issubclass(value, BaseException):
            raise value()
        return value

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> Any:
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        if self.devices[i].get("lost"):
            raise NVMLError("GPU is lost")
        return i

    def nvmlDeviceGetName(self, h: int) -> Any:
        return self._field(h, "name")

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-{h}"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        total, used = self._field(h, "mem")
        return SimpleNamespace(total=total, used=used)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=self._field(h, "util"))

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        power = self._field(h, "power_mw")
        return next(power) if hasattr(power, "__next__") else power

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return self._field(h, "limit_mw")

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return self._field(h, "temp")

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        return {1: 1980, 2: 2619}[clock]

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        return self._field(h, "procs")

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        energy = self._field(h, "energy_mj")
        return next(energy) if hasattr(energy, "__next__") else energy


def h100(**over: Any) -> dict[str, Any]:
    d = {"name": b"NVIDIA H100 80GB HBM3", "mem": (85520809984, 1048576 * 512), "util": 37, "power_mw": 312_500,
         "limit_mw": 700_000, "temp": 41, "procs": [SimpleNamespace(pid=2**22 + 7, usedGpuMemory=2**30)],
         "energy_mj": NVMLError_NotSupported}
    d.update(over)
    return d


def test_healthy_two_gpu_box_units_and_versions() -> None:
    fake = FakeNvml([h100(), h100(util=0)])
    snap = gpu.inspect(nvml=fake)  # type: ignore[arg-type]
    assert snap.available and snap.driver_version == "550.54.15" and snap.cuda_version == "12.4"
    g = snap.gpus[0]
    assert (g.name, g.memory_total_mib, g.memory_used_mib, g.power_w, g.power_limit_w) == (
        "NVIDIA H100 80GB HBM3", 81559, 512, 312.5, 700.0)
    assert (g.temperature_c, g.sm_clock_mhz, g.mem_clock_mhz, g.utilization_pct) == (41, 1980, 2619, 37)
    assert g.processes == ((2**22 + 7, None, 1024),)  # no such pid here: name unknown, not an error
    assert len(snap.gpus) == 2 and fake.shutdowns == 1
    assert gpu.gpu_summary(snap) == {"name": "NVIDIA H100 80GB HBM3", "count": 2, "driver_version": "550.54.15",
                                     "cuda_version": "12.4", "memory_total_mib": 81559}
    assert gpu.gpu_summary(snap, [1])["count"] == 1  # type: ignore[index]
    d = gpu.snapshot_to_dict(snap)
    assert d["gpus"][0]["processes"] == [[2**22 + 7, None, 1024]]


def test_power_not_supported_becomes_none_not_a_crash() -> None:
    snap = gpu.inspect(nvml=FakeNvml([h100(power_mw=NVMLError_NotSupported, temp=NVMLError)]))  # type: ignore[arg-type]
    g = snap.gpus[0]
    assert snap.available and g.power_w is None and g.temperature_c is None and g.name is not None


def test_used_memory_unavailable_in_container() -> None:
    snap = gpu.inspect(nvml=FakeNvml([h100(procs=[SimpleNamespace(pid=1, usedGpuMemory=None)])]))  # type: ignore[arg-type]
    assert snap.gpus[0].processes[0][0] == 1 and snap.gpus[0].processes[0][2] is None


def test_lost_gpu_is_marked_invalid_and_the_others_still_read() -> None:
    snap = gpu.inspect(nvml=FakeNvml([h100(lost=True), h100()]))  # type: ignore[arg-type]
    assert snap.available
    assert snap.gpus[0].error and snap.gpus[0].name is None
    assert snap.gpus[1].error is None and snap.gpus[1].power_w == 312.5


def test_driver_missing_gives_the_no_gpu_state() -> None:
    fake = FakeNvml([], init_error=NVMLError("NVML Shared Library Not Found"))
    snap = gpu.inspect(nvml=fake)  # type: ignore[arg-type]
    assert not snap.available and snap.reason.startswith("no NVIDIA GPU visible: ")
    assert "Shared Library Not Found" in snap.reason and snap.gpus == ()


def test_zero_devices_and_old_string_driver() -> None:
    snap = gpu.inspect(nvml=FakeNvml([], driver="535.1", cuda=0))  # type: ignore[arg-type]
    assert not snap.available and "no devices" in snap.reason and snap.driver_version == "535.1"
    assert snap.cuda_version is None


def test_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "_load_nvml", lambda: None)
    snap = gpu.inspect()
    assert not snap.available and "nvidia-ml-py" in snap.reason


def test_this_machine_without_a_gpu_never_raises() -> None:
    snap = gpu.inspect()  # the real pynvml: no driver on CI boxes
    if snap.available:
        pytest.skip("an NVIDIA GPU is visible here")
    assert snap.reason.startswith("no NVIDIA GPU visible")


def test_trapezoid_energy() -> None:
    assert gpu.trapezoid_energy_j([0.0, 2.0], [100.0, 300.0]) == 400.0
    assert gpu.trapezoid_energy_j([5.0], [100.0]) == 0.0
    with pytest.raises(ValueError, match="same length"):
        gpu.trapezoid_energy_j([0.0], [1.0, 2.0])


def _clock(step: float) -> Any:
    counter = itertools.count()
    return lambda: next(counter) * step


def test_power_sampler_trapezoid_with_a_scripted_clock() -> None:
    # power 100 W then 300 W then 300 W at t = 1, 2, 3 s (t0 = 0 from the clock's first read)
    fake = FakeNvml([h100(power_mw=iter([100_000, 300_000, 300_000]))])
    ps = gpu.PowerSampler(interval_s=3600, nvml=fake, clock=_clock(1.0))  # type: ignore[arg-type]
    ps.start()
    ps.sample_once()
    ps.stop()
    s = ps.summary()
    assert s is not None and s["energy_source"] == "power samples (trapezoid)"
    assert s["energy_j"] == pytest.approx(200.0 + 300.0) and s["mean_w"] == pytest.approx(250.0)
    assert s["peak_w"] == 300.0 and s["gpus"] == 1


def test_power_sampler_prefers_the_energy_counter() -> None:
    fake = FakeNvml([h100(power_mw=200_000, energy_mj=iter([1_000_000, 1_450_000]))])
    ps = gpu.PowerSampler(interval_s=3600, nvml=fake, clock=_clock(1.0))  # type: ignore[arg-type]
    ps.start()
    ps.stop()
    s = ps.summary()
    assert s is not None and s["energy_source"] == "NVML total energy counter" and s["energy_j"] == 450.0


def test_power_sampler_without_gpu_summarises_to_none() -> None:
    ps = gpu.PowerSampler(nvml=FakeNvml([], init_error=NVMLError("no driver")))  # type: ignore[arg-type]
    with ps:
        pass
    assert ps.summary() is None and not ps.available
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        gpu.PowerSampler(interval_s=0)
