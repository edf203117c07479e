"""The Probe page's logic outside the page: form values -> :class:`~probes.job.ProbeRequest`, launch-plan
flags, progress text, and the GPU-status and "another probe is running" panels.

:class:`ProbeForm` holds the raw widget values; :func:`build_request` validates them (``ValueError`` naming
the field) and builds the request. The vLLM flags are free text, one or more per line, split like a shell
would (:func:`parse_serve_args`); ``--model``, ``--host`` and ``--port`` are the probe's own.

>>> parse_serve_args("--max-model-len 512\\n--enforce-eager  # CPU")
('--max-model-len', '512', '--enforce-eager')
>>> progress_text({"point_index": 1, "points_total": 2, "concurrency": 4, "done": 3, "total": 6, "failed": 0,
...                "phase": "load"})
(0.75, 'point 2 of 2 (concurrency 4): 3 of 6 requests')
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from probes.job import ProbeRequest
from probes.load.workload import WorkloadSpec
from probes.plan.sweep import SweepConfig, parse_int_list

__all__ = [
    "SOURCES",
    "RESERVED_FLAGS",
    "ProbeForm",
    "parse_serve_args",
    "launch_plan",
    "flags_text",
    "build_request",
    "progress_text",
    "read_log_tail",
    "gpu_frame",
    "gpu_status_panel",
    "busy_panel",
]

SOURCES = ("synthetic", "model", "endpoint")
RESERVED_FLAGS = ("--model", "--host", "--port")


@dataclass(frozen=True)
class ProbeForm:
    """The Probe page's inputs as entered. ``synthetic``: "tiny", a catalog/HF id or a config.json path;
    ``goodput_*_ms`` 0 means no target; ``saturation_pct`` 0 never stops early; ``gpus`` = tensor parallel."""

    source: str = "synthetic"
    synthetic: str = "tiny"
    model: str = ""
    endpoint: str = ""
    api_key: str = field(default="", repr=False)  # never in a repr, a log or session state
    vllm_python: str = ""
    flags: str = ""
    input_tokens: int = 512
    output_tokens: int = 128
    num_requests: int = 16
    concurrency: str = "1,4,16"
    shared_prefix_count: int = 0
    shared_prefix_tokens: int = 0
    seed: int = 0
    warmup_requests: int = 2
    goodput_ttft_ms: float = 0.0
    goodput_tpot_ms: float = 0.0
    saturation_pct: float = 5.0
    gpus: int = 1
    log_path: str | None = None


def parse_serve_args(text: str) -> tuple[str, ...]:
    """vLLM flags typed by the user -> argv items (``#`` starts a comment); ValueError on bad quoting or a
    flag the probe sets itself.

    >>> parse_serve_args("--port 9000")
    Traceback (most recent call last):
    ...
    ValueError: vLLM flags: --port is set by the probe; remove it
    """
    try:
        args = tuple(shlex.split(text or "", comments=True))
    except ValueError as exc:
        raise ValueError(f"vLLM flags: {exc} (check the quotes)") from exc
    for arg in args:
        if arg.split("=", 1)[0] in RESERVED_FLAGS:
            raise ValueError(f"vLLM flags: {arg.split('=', 1)[0]} is set by the probe; remove it")
    return args


def launch_plan(model_id: str, gpu_id: str, gpus: int = 1, weight_dtype: str = "bf16",
                max_model_len: int = 4096, *, input_tokens: int | None = None, output_tokens: int | None = None,
                free_gib_at_start: float | None = None) -> Any:
    """The Capacity page's launch plan (:func:`calculators.launch.plan_launch`) for a catalog model on a
    catalog GPU; None when the model is not in the model catalog (e.g. "tiny", an unknown HF id).

    ``input_tokens + output_tokens`` (the scenario's request) size ``--max-num-seqs``; ``free_gib_at_start``
    (measured on this machine's GPU, ``ui.cached.free_gib_at_start``) caps ``--gpu-memory-utilization``. None:
    the plan's defaults (512 + 256 tokens, an idle GPU). A plan that will not start has no flags and says why.
    """
    from calculators import catalog, modelspec  # noqa: PLC0415 - only when a plan is asked for
    from calculators.launch import DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS, plan_launch  # noqa: PLC0415
    from calculators.memory import FitInput  # noqa: PLC0415

    try:
        arch = modelspec.model(model_id)
    except (KeyError, ValueError):
        return None
    inp = FitInput(arch, catalog.gpu(gpu_id), int(gpus), weight_dtype,
                   max_model_len=min(int(max_model_len), arch.max_position_embeddings))
    return plan_launch(inp, input_tokens=input_tokens or DEFAULT_INPUT_TOKENS,
                       output_tokens=output_tokens or DEFAULT_OUTPUT_TOKENS, free_gib_at_start=free_gib_at_start)


def flags_text(plan: Any) -> str:
    """A launch plan's flags, one per line (what the flags box is prefilled with); '' for no plan."""
    if plan is None:
        return ""
    return "\n".join(shlex.join([f.name] + ([f.value] if f.value is not None else [])) for f in plan.flags)


def _int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _target(name: str, value: Any) -> float | None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0 (0 = no target), got {value!r}")
    return float(value) or None


def build_request(form: ProbeForm) -> ProbeRequest:
    """The probe request for ``form``; ValueError naming the field that is wrong.

    >>> import sys
    >>> r = build_request(ProbeForm(synthetic="tiny", concurrency="1,2", num_requests=4, flags="--enforce-eager",
    ...                             vllm_python=sys.executable))
    >>> r.synthetic, r.config.concurrencies, r.serve_args, r.config.workload.num_requests
    ('tiny', (1, 2), ('--enforce-eager',), 4)
    >>> build_request(ProbeForm(source="endpoint", endpoint="ftp://x"))
    Traceback (most recent call last):
    ...
    ValueError: endpoint URL must start with http:// or https://, got 'ftp://x'
    """
    if form.source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {form.source!r}")
    workload = WorkloadSpec(
        input_tokens=_int("input tokens", form.input_tokens, 1),
        output_tokens=_int("output tokens", form.output_tokens, 1),
        num_requests=_int("requests per point", form.num_requests, 1),
        shared_prefix_count=_int("shared prefixes", form.shared_prefix_count, 0),
        shared_prefix_tokens=_int("shared prefix tokens", form.shared_prefix_tokens, 0),
        seed=_int("seed", form.seed, 0),
    )
    saturation = form.saturation_pct
    if not isinstance(saturation, int | float) or not 0 <= saturation < 1000:
        raise ValueError(f"early-stop gain must be a percentage in [0, 1000), got {saturation!r}")
    config = SweepConfig(workload=workload, concurrencies=parse_int_list(form.concurrency),
                         warmup_requests=_int("warm-up requests", form.warmup_requests, 0),
                         goodput_ttft_ms=_target("TTFT target", form.goodput_ttft_ms),
                         goodput_tpot_ms=_target("TPOT target", form.goodput_tpot_ms),
                         saturation_gain=float(saturation) / 100.0)
    gpus = _int("GPUs", form.gpus, 1)
    common = {"config": config, "gpu_indices": tuple(range(gpus)), "log_path": form.log_path}
    if form.source == "endpoint":
        url = form.endpoint.strip()
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"endpoint URL must start with http:// or https://, got {url!r}")
        return ProbeRequest(endpoint=url, api_key=form.api_key or None, **common)
    python = form.vllm_python.strip()
    if not python:
        raise ValueError("vLLM interpreter is required: the python of the environment where vLLM is installed")
    if not Path(python).exists():
        raise ValueError(f"vLLM interpreter {python!r} does not exist")
    target = (form.synthetic if form.source == "synthetic" else form.model).strip()
    if not target:
        raise ValueError(f"{'synthetic model' if form.source == 'synthetic' else 'model id or path'} is required")
    return ProbeRequest(**{form.source: target}, serve_args=parse_serve_args(form.flags), vllm_python=python,
                        **common)


def progress_text(progress: Any) -> tuple[float, str]:
    """Overall fraction done (0..1) and a line like "point 2 of 3 (concurrency 8): 5 of 24 requests" (open-loop
    points name their rate instead).

    >>> progress_text({"point_index": 1, "points_total": 3, "concurrency": 8, "done": 6, "total": 24})
    (0.4166666666666667, 'point 2 of 3 (concurrency 8): 6 of 24 requests')
    >>> progress_text({"point_index": 0, "points_total": 2, "concurrency": 0, "request_rate": 4.0, "done": 0,
    ...                "total": 80})[1]
    'point 1 of 2 (rate 4 req/s, uncapped): 0 of 80 requests'
    """
    if progress is None:
        return 0.0, "starting vLLM (waiting for /health)"
    p = asdict(progress) if is_dataclass(progress) else dict(progress)
    total_points = max(1, int(p.get("points_total") or 1))
    per_point = (p.get("done") or 0) / p["total"] if p.get("total") else 0.0
    fraction = min(1.0, (int(p.get("point_index") or 0) + per_point) / total_points)
    rate, conc = p.get("request_rate"), p.get("concurrency")
    if rate is not None and rate != float("inf"):  # open loop (a rate search, or --request-rate)
        load = f"rate {rate:.4g} req/s" + (f", at most {conc} in flight" if conc else ", uncapped")
    else:
        load = f"concurrency {conc}"
    text = (f"point {int(p.get('point_index') or 0) + 1} of {total_points} ({load}): "
            + ("warm-up" if p.get("phase") == "warmup" else f"{p.get('done')} of {p.get('total')} requests"))
    if p.get("failed"):
        text += f", {p['failed']} failed"
    return fraction, text


def read_log_tail(path: str | None, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file ('' when absent or unreadable)."""
    if not path:
        return ""
    try:
        text = Path(path).read_bytes()[-64_000:].decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def gpu_frame(snapshot: Mapping[str, Any]) -> pd.DataFrame:
    """One row per GPU of a ``snapshot_to_dict`` snapshot."""
    cols = ["index", "name", "memory_used_mib", "memory_total_mib", "utilization_pct", "power_w",
            "temperature_c", "error"]
    return pd.DataFrame([{c: g.get(c) for c in cols} for g in snapshot.get("gpus") or []], columns=cols)


def gpu_status_panel(snapshot: Mapping[str, Any]) -> None:
    """What NVML sees: a warning with the reason when no GPU is visible, else a table."""
    if not snapshot.get("available"):
        reason = str(snapshot.get("reason") or "")
        st.warning(reason[:1].upper() + reason[1:] if reason.lower().startswith("no nvidia gpu visible")
                   else f"No NVIDIA GPU visible. {reason}".strip())
        return
    st.caption(f"Driver {snapshot.get('driver_version') or '?'}, CUDA {snapshot.get('cuda_version') or '?'}")
    st.dataframe(gpu_frame(snapshot), hide_index=True, key="probe_gpu_table")


def busy_panel(status: Mapping[str, Any]) -> None:
    """Another session's (or the CLI's) probe holds the GPU: say who and what."""
    progress = status.get("progress")
    _, text = progress_text(progress) if progress else (0.0, str(status.get("phase") or "running"))
    st.warning(f"Another probe is running on this GPU (pid {status.get('pid', '?')} on {status.get('host', '?')}, "
               f"started {status.get('started_at', '?')}, model {status.get('model', '?')}): {text}. "
               "Start is disabled until it finishes.")
