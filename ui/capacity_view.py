"""The Capacity page's logic outside the page: widget values -> fit and roofline inputs (a bad value falls back to
its last good one, named by its label), the scenario's request shape, the one-click fixes, and the estimate.

- :func:`build_inputs` turns the widget values into ``FitInput`` / ``RooflineInput``. A value the calculators
  reject is reported by its widget label (``calculators.validation.relabel``) and replaced by its last good value
  (or, for the GPU count, the largest that divides the heads), so the other edits still apply.
- :func:`fix_changes` reads the widget changes out of a "what would fit" line of ``calculators.memory``'s fixes
  (each names its vLLM flag), so each fix is a button that applies them.
- :func:`shape_estimate` is THE scenario-shaped throughput estimate of the page: output tokens/s and TPOT of a
  closed loop of ``concurrency`` streams of the scenario's requests (prefill included), through
  ``calculators.closedloop`` (optionally with a calibration's constants); nothing else on the page computes an
  estimate.
- :func:`run_points` / :func:`calibrate_from_run`: "Calibrate from a measured run": a probe run JSON (stored or
  reference) -> the deployment it measured (catalog GPU and model, dtype, TP, batch budget, the KV room vLLM
  logged) -> :func:`calculators.calibration.fit_calibration`; ``shape_estimate(..., calibration=...)`` then
  uses the fitted constants and carries the label (run, MAE on its points, "extrapolated to" when the GPU or
  model differs).
- :func:`seed_shape` / :func:`read_shape`: the scenario's input/output tokens per request as Capacity widgets
  (keys ``cap_input_tokens``, ``cap_output_tokens``), shared with the Break-even page through ``ui.state``.

>>> fix_changes("fp8 weights (--quantization fp8): 67.7 GiB of weights, 8,816 KV tokens (fits)")
{'weight_dtype': 'fp8'}
>>> fix_changes("--gpu-memory-utilization 0.99 and TP=2 (--tensor-parallel-size 2): 65.7 GiB of weights, 1 KV tokens (fits)")
{'gpu_memory_utilization': 0.99, 'tensor_parallel_size': 2}
>>> split_fix("a bigger GPU: NVIDIA B200 (HGX 1000 W): 131.4 GiB of weights, 99,120 KV tokens (fits)")
('a bigger GPU: NVIDIA B200 (HGX 1000 W)', '131.4 GiB of weights, 99,120 KV tokens (fits)')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import streamlit as st

from calculators import catalog, modelspec
from calculators.calibration import (
    Calibration,
    MeasuredPoint,
    calibrated_estimate,
    fit_calibration,
    points_from_run,
)
from calculators.closedloop import STEP_MBU, STEP_MFU, ClosedLoopInput, closed_loop_point
from calculators.memory import FitInput
from calculators.modelspec import ModelArch
from calculators.roofline import DEFAULT_MBU, DEFAULT_MFU, RooflineInput
from calculators.scenario import MAX_TOKENS, Scenario, replace_field
from calculators.validation import relabel
from probes.results import reference
from ui import inputs

__all__ = [
    "WIDGETS",
    "LABELS",
    "TP_OPTIONS",
    "human_error",
    "FieldError",
    "build_inputs",
    "fix_changes",
    "split_fix",
    "fix_widget_values",
    "ShapePoint",
    "shape_estimate",
    "run_points",
    "calibrate_from_run",
    "calibrate_from_runs",
    "calibration_frame",
    "request_shape",
    "seed_shape",
    "read_shape",
]

TP_OPTIONS = (1, 2, 4, 8)
# FitInput / RooflineInput field -> (widget key, widget label)
WIDGETS: dict[str, tuple[str, str]] = {
    "gpu": ("cap_gpu", "GPU"),
    "tensor_parallel_size": ("cap_gpus", "GPUs (tensor parallel)"),
    "weight_dtype": ("cap_dtype", "Weights"),
    "kv_cache_dtype": ("cap_kv_dtype", "KV cache dtype"),
    "max_model_len": ("cap_max_len", "Max model length (--max-model-len)"),
    "gpu_memory_utilization": ("cap_util", "GPU memory utilization"),
    "concurrency": ("cap_concurrency", "Concurrency (streams)"),
    "max_loras": ("cap_loras", "LoRA slots (--max-loras; 0 = off)"),
    "max_lora_rank": ("cap_lora_rank", "LoRA max rank"),
    "mbu": ("cap_mbu", "MBU (bandwidth efficiency)"),
    "mfu": ("cap_mfu", "MFU (compute efficiency)"),
}
LABELS: dict[str, str] = {
    **inputs.LABELS,
    **{field: label for field, (_key, label) in WIDGETS.items()},
    "tensor parallel size": WIDGETS["tensor_parallel_size"][1],
}
"""Field name as the calculators' messages say it -> the Capacity widget's label."""


def human_error(message: object) -> str:
    """A calculator's error with the field named by its Capacity widget label.

    >>> human_error("tensor parallel size 8 must divide the attention heads (28)")
    'GPUs (tensor parallel) 8 must divide the attention heads (28)'
    >>> human_error("traffic.output_tokens must be >= 0.01, got 0")
    'Output tokens per request must be at least 0.01, got 0'
    """
    return relabel(str(message), LABELS)


def _field_of(message: str) -> str | None:
    """Which input a calculator's message is about (it starts with the field's name), else None."""
    for name in sorted(LABELS, key=len, reverse=True):
        if message.startswith(name) and name in WIDGETS | {"tensor parallel size": None}:
            return "tensor_parallel_size" if name == "tensor parallel size" else name
    return None


@dataclass(frozen=True)
class FieldError:
    """A widget value the calculators rejected: the field, the message (by label), the value used instead."""

    field: str
    message: str
    used: Any

    @property
    def key(self) -> str:
        return WIDGETS[self.field][0]

    @property
    def label(self) -> str:
        return WIDGETS[self.field][1]


def _make(arch: ModelArch, v: Mapping[str, Any]) -> tuple[FitInput, RooflineInput]:
    g = catalog.gpu(v["gpu"])
    tp = int(v["tensor_parallel_size"])
    fit_in = FitInput(arch, g, tp, v["weight_dtype"], v["kv_cache_dtype"],
                      min(int(v["max_model_len"]), arch.max_position_embeddings), float(v["gpu_memory_utilization"]),
                      concurrency=int(v["concurrency"]), max_loras=int(v["max_loras"]),
                      max_lora_rank=int(v["max_lora_rank"]))
    rin = RooflineInput(arch, g, tp, v["weight_dtype"], v["kv_cache_dtype"], mbu=float(v["mbu"]), mfu=float(v["mfu"]))
    return fit_in, rin


def build_inputs(arch: ModelArch, values: Mapping[str, Any], last_good: Mapping[str, Any] | None = None
                 ) -> tuple[FitInput, RooflineInput, dict[str, Any], list[FieldError]]:
    """The calculators' inputs for ``values`` (field -> widget value), the values used, and the rejected ones.

    A rejected value is replaced by its ``last_good`` one (for the GPU count: else the largest of
    :data:`TP_OPTIONS` below it that the model takes) and reported; ``ValueError`` (by label) when no
    replacement works, e.g. a model that no GPU count divides.

    >>> from calculators.modelspec import model
    >>> v = {"gpu": "h100-sxm", "tensor_parallel_size": 8, "weight_dtype": "bf16", "kv_cache_dtype": "auto",
    ...      "max_model_len": 4096, "gpu_memory_utilization": 0.92, "concurrency": 32, "max_loras": 0,
    ...      "max_lora_rank": 16, "mbu": 0.73, "mfu": 0.5}
    >>> fit_in, _, used, errors = build_inputs(model("Qwen/Qwen2.5-7B-Instruct"), v)
    >>> fit_in.tensor_parallel_size, errors[0].message
    (4, 'GPUs (tensor parallel) 8 must divide the attention heads (28)')
    """
    v = dict(values)
    errors: list[FieldError] = []
    for _ in range(len(WIDGETS) + 4):
        try:
            fit_in, rin = _make(arch, v)
            return fit_in, rin, v, errors
        except ValueError as exc:
            field = _field_of(str(exc))
            if field is None or any(e.field == field for e in errors) and field != "tensor_parallel_size":
                raise ValueError(human_error(exc)) from None
            tried = {e.used for e in errors if e.field == field} | {values[field]}
            candidates = [last_good[field]] if last_good and field in last_good else []
            if field == "tensor_parallel_size":
                candidates += [t for t in sorted(TP_OPTIONS, reverse=True) if t < int(values[field])]
            fallback = next((c for c in candidates if c not in tried), None)
            if fallback is None:
                raise ValueError(human_error(exc)) from None
            if not any(e.field == field for e in errors):
                errors.append(FieldError(field, human_error(exc), fallback))
            else:  # the first fallback was rejected too: keep the first message, report the value now used
                errors = [replace(e, used=fallback) if e.field == field else e for e in errors]
            v[field] = fallback
    raise ValueError("these inputs could not be made valid; reset them")  # pragma: no cover - loop bound


_RESULT = re.compile(r"^(.*?): ([\d,.]+ GiB of weights.*)$")


def split_fix(fix: str) -> tuple[str, str]:
    """A fix line -> (what to change, what it gives)."""
    m = _RESULT.match(fix)
    return (m.group(1), m.group(2)) if m else (fix, "")


def fix_changes(fix: str) -> dict[str, Any] | None:
    """The input changes a "what would fit" line asks for (by the vLLM flags it names), or None when it names
    none this page can apply (then it is shown as text)."""
    what = split_fix(fix)[0]
    out: dict[str, Any] = {}
    if m := re.search(r"--gpu-memory-utilization ([0-9.]+)", what):
        out["gpu_memory_utilization"] = float(m.group(1))
    if "--quantization fp8" in what:
        out["weight_dtype"] = "fp8"
    if "int4 weights" in what:
        out["weight_dtype"] = "int4-awq"
    if "--kv-cache-dtype fp8" in what:
        out["kv_cache_dtype"] = "fp8"
    if (m := re.search(r"--tensor-parallel-size (\d+)", what)) and int(m.group(1)) in TP_OPTIONS:
        out["tensor_parallel_size"] = int(m.group(1))
    if m := re.search(r"--max-model-len (\d+)", what):
        out["max_model_len"] = int(m.group(1))
    if m := re.search(r"a bigger GPU: (.+)$", what):
        gpu_id = next((g.id for g in catalog.gpus().values() if g.name == m.group(1).strip()), None)
        if gpu_id is None:
            return None
        out["gpu"] = gpu_id
    return out or None


def fix_widget_values(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Input changes -> {widget key: value} for ``st.session_state``."""
    return {WIDGETS[field][0]: value for field, value in changes.items()}


@dataclass(frozen=True)
class ShapePoint:
    """The estimate at one concurrency for the scenario's request shape."""

    concurrency: int
    output_tokens_per_s_est: float
    tpot_ms_est: float
    output_tokens_per_s_max: float  # the same closed loop at the roofline ceilings (no efficiency losses)
    label: str = ""  # with a calibration: its source, error, and "extrapolated to ..." when GPU/model differ
    extrapolated: bool = False


def shape_estimate(rin: RooflineInput, input_tokens: int, output_tokens: int, concurrency: int,
                   calibration: Calibration | None = None) -> ShapePoint:
    """Closed-loop estimate for ``concurrency`` streams, each sending requests of ``input_tokens`` in and
    ``output_tokens`` out back to back (prefill included). THE estimate of the Capacity page.

    It is :func:`calculators.closedloop.closed_loop_point` (mixed prefill/decode steps, fitted on real vLLM
    runs: benchmarks/README.md, *Prediction error*). The page caps ``concurrency`` at what the KV cache and
    ``--max-num-seqs`` run at once, so the KV room given here is exactly ``concurrency`` whole requests. The
    page's MBU/MFU inputs scale the calibrated step efficiencies (at their defaults they are the calibrated
    ones); ``output_tokens_per_s_max`` is the same closed loop at the datasheet ceilings with no per-step overhead.
    With a ``calibration`` (:func:`calibrate_from_run`) its constants replace the reference ones (the MBU/MFU
    inputs scale them the same way) and ``label`` says where they come from.

    >>> from calculators.catalog import gpu
    >>> from calculators.modelspec import model
    >>> rin = RooflineInput(model("meta-llama/Llama-3.1-8B-Instruct"), gpu("h100-sxm"))
    >>> p = shape_estimate(rin, 512, 256, 32)  # a real vLLM 0.26 on an H100: 3,455 tok/s, median TPOT 7.68 ms
    >>> round(p.output_tokens_per_s_est, -1), round(p.tpot_ms_est, 1), round(p.output_tokens_per_s_max, -1)
    (3450.0, 8.4, 5140.0)
    """
    i, o, c = max(1, int(input_tokens)), max(1, int(output_tokens)), max(1, int(concurrency))
    base = ClosedLoopInput(
        rin.arch, rin.gpu, rin.tensor_parallel_size, rin.weight_dtype, rin.kv_cache_dtype,
        input_tokens=min(i, 10**7), output_tokens=min(o, 10**7), max_num_seqs=min(c, 10**6),
        kv_capacity_tokens=min(c * (i + o), 10**10),
    )
    ceiling = closed_loop_point(replace(base, step_mbu=1.0, step_mfu=1.0, step_overhead_ms=0.0), c)
    mbu0, mfu0 = (STEP_MBU, STEP_MFU) if calibration is None else (calibration.step_mbu, calibration.step_mfu)
    scale = {"step_mbu": min(1.0, mbu0 * rin.mbu / DEFAULT_MBU), "step_mfu": min(1.0, mfu0 * rin.mfu / DEFAULT_MFU)}
    if calibration is None:
        est = closed_loop_point(replace(base, **scale), c)
        return ShapePoint(c, est.output_tokens_per_s_est, est.tpot_ms_est, ceiling.output_tokens_per_s_est)
    cal = replace(calibration, **scale)
    out = calibrated_estimate(cal, base, c)
    return ShapePoint(c, out.point.output_tokens_per_s_est, out.point.tpot_ms_est, ceiling.output_tokens_per_s_est,
                      out.label, out.extrapolated)


def _flag(args: list[str], name: str) -> str | None:
    for j, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag == name:
            return value if eq else (args[j + 1] if j + 1 < len(args) else None)
    return None


def run_points(run: Mapping[str, Any], run_id: str) -> list[MeasuredPoint]:
    """A probe run JSON's points as calibration points, with the deployment its JSON records: the model (a
    catalog id), the GPU (NVML name -> catalog), ``--quantization``/``--kv-cache-dtype``, the tensor-parallel
    size, ``--max-num-batched-tokens``, and the KV room vLLM logged (``startup.kv_cache_tokens``, else the
    points' ``kv_cache_size_tokens`` scrape, else the memory fit at ``--max-model-len``). ``ValueError`` saying
    what is missing when the run cannot calibrate (a model or GPU not in the catalogs, a shared-prefix workload
    served from the prefix cache, no completed point).

    >>> run = {"model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": {"name": "NVIDIA H200", "count": 1},
    ...        "server": {"serve_args": ["--max-num-batched-tokens", "2048"]}, "startup": {"kv_cache_tokens": 920592},
    ...        "workload": {"input_tokens": 512, "output_tokens": 256},
    ...        "points": [{"concurrency": 32, "completed": 96, "output_tokens_per_s": 4436.4}]}
    >>> p = run_points(run, "x")[0]
    >>> p.inp.gpu.id, p.inp.weight_dtype, p.inp.batched_tokens, p.inp.kv_capacity_tokens
    ('h200', 'bf16', 2048, 920592)
    """
    model_id = str(run.get("model") or "")
    if model_id not in modelspec.models():
        raise ValueError(f"run {run_id}: model {model_id or '(none)'!r} is not in the model catalog")
    gpu_name = (run.get("gpu") or {}).get("name") if isinstance(run.get("gpu"), Mapping) else None
    gpu_id = reference.gpu_catalog_id(gpu_name)
    if gpu_id is None:
        raise ValueError(f"run {run_id}: GPU {gpu_name or '(none recorded)'!r} is not in the GPU catalog")
    wl = run.get("workload") or {}
    if (wl.get("shared_prefix_tokens") or 0) > 0:
        raise ValueError(f"run {run_id}: a shared-prefix workload (prefix caching is not modelled)")
    args = [str(a) for a in ((run.get("server") or {}).get("serve_args") or [])]
    quant, kv_dtype = _flag(args, "--quantization"), _flag(args, "--kv-cache-dtype")
    if quant not in (None, "fp8"):
        raise ValueError(f"run {run_id}: --quantization {quant} is not modelled (bf16 and fp8 are)")
    mbt, mml = _flag(args, "--max-num-batched-tokens"), _flag(args, "--max-model-len")
    kv = (run.get("startup") or {}).get("kv_cache_tokens")
    if not isinstance(kv, int | float):
        kv = next((m["kv_cache_size_tokens"] for p in run.get("points") or []
                   if isinstance(m := p.get("server_metrics"), Mapping)
                   and isinstance(m.get("kv_cache_size_tokens"), int | float)), None)
    base = ClosedLoopInput(
        modelspec.model(model_id), catalog.gpu(gpu_id), reference.tensor_parallel_size(run),
        "fp8" if quant == "fp8" else "bf16", "fp8" if (kv_dtype or "").startswith("fp8") else "auto",
        max_num_batched_tokens=int(mbt) if mbt and mbt.isdigit() else None,
        kv_capacity_tokens=int(kv) if kv else None, max_model_len=int(mml) if mml and mml.isdigit() else None)
    points = points_from_run(run, run_id, base)
    if not points:
        raise ValueError(f"run {run_id}: no completed point to calibrate on")
    return points


def calibrate_from_run(run: Mapping[str, Any], run_id: str) -> Calibration:
    """:func:`calculators.calibration.fit_calibration` on :func:`run_points` (``ValueError`` as there)."""
    return fit_calibration(run_points(run, run_id))


def calibrate_from_runs(runs: Sequence[tuple[Mapping[str, Any], str]]) -> Calibration:
    """One calibration on the points of several ``(run, run_id)`` together (``ValueError`` as :func:`run_points`,
    or when none is given)."""
    if not runs:
        raise ValueError("no run to calibrate on")
    return fit_calibration([p for run, run_id in runs for p in run_points(run, run_id)])


def request_shape(s: Scenario) -> tuple[int, int]:
    """The scenario's mean request as whole tokens: (input >= 1, output >= 1)."""
    return max(1, round(s.traffic.input_tokens)), max(1, round(s.traffic.output_tokens))


SHAPE = (
    inputs.NumberSpec("cap_input_tokens", "traffic.input_tokens", inputs.LABELS["traffic.input_tokens"],
                      0, MAX_TOKENS, 128, integer=True, help="shared with the Break-even page (the scenario)"),
    inputs.NumberSpec("cap_output_tokens", "traffic.output_tokens", inputs.LABELS["traffic.output_tokens"],
                      0, MAX_TOKENS, 64, integer=True, help="shared with the Break-even page (the scenario)"),
)
_SEEDED_KEY = "cap_shape_seeded"  # (scenario, {key: value the widget was seeded with})


def seed_shape(s: Scenario) -> None:
    """Put the scenario's request shape into the Capacity widgets when the scenario changed elsewhere."""
    seeded = st.session_state.get(_SEEDED_KEY)
    if seeded is not None and seeded[0] == s and all(spec.key in st.session_state for spec in SHAPE):
        return
    values = {spec.key: round(float(inputs.get_path(s, spec.path))) for spec in SHAPE}  # type: ignore[arg-type]
    st.session_state.update(values)
    st.session_state[_SEEDED_KEY] = (s, values)


def read_shape(s: Scenario) -> tuple[Scenario, list[str]]:
    """``s`` with the shape widgets the user changed applied (a mean such as 312.7 shown as 313 is not rewritten
    unless edited); errors by label, the field keeping its value."""
    _, seeded = st.session_state[_SEEDED_KEY]
    new, errors = s, []
    for spec in SHAPE:
        value = st.session_state[spec.key]
        if value == seeded[spec.key]:
            continue
        try:
            new = replace_field(new, spec.path, value)
        except ValueError as exc:
            errors.append(f"{human_error(exc)} (kept at {inputs.get_path(s, spec.path):,g})")
    if new != s:
        st.session_state[_SEEDED_KEY] = (new, {spec.key: st.session_state[spec.key] for spec in SHAPE})
    return new, errors


def calibration_frame(calibration: Calibration) -> pd.DataFrame:
    """One row per point the calibration was fitted on: measured and estimated tok/s, median TPOT and TTFT, and
    the errors in % (TTFT is reported, not fitted)."""
    return pd.DataFrame([{
        "run": e.run_id, "in / out": f"{e.input_tokens} / {e.output_tokens}", "c": e.concurrency, "bound": e.bound,
        "tok/s measured": e.measured_tokens_per_s, "tok/s est": e.est_tokens_per_s,
        "tok/s err %": e.err_tokens_per_s_pct, "TPOT ms measured": e.measured_tpot_ms, "TPOT ms est": e.est_tpot_ms,
        "TPOT err %": e.err_tpot_pct, "TTFT ms measured": e.measured_ttft_ms, "TTFT ms est": e.est_ttft_ms,
        "TTFT err %": e.err_ttft_pct} for e in calibration.errors])
