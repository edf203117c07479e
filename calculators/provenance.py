"""What a verdict rests on: every input with its kind and source, and a throughput that has gone stale.

Kinds (``KINDS``): **assumption** (typed by the user, or a default we chose), **catalog** (a price or spec from a
table with ``source`` and ``as_of``; **catalog (unverified)** where the row is marked estimated or unchecked),
**estimate** (a roofline / closed-loop calculation, with its calibration) and **measured** (a probe run or a
published benchmark, with its source).

The throughput's kind is read from the first word of ``self_host.throughput_source`` ("measured…",
"estimate…"/"roofline estimate…", anything else: an assumption). The context it was measured or estimated in is
kept in explicit scenario fields, not parsed from that free text: ``self_host.throughput_gpu`` (catalog id),
``throughput_model`` (Hugging Face id), ``throughput_dtype`` (weights, e.g. "fp8") and
``throughput_input_tokens`` / ``throughput_output_tokens`` (the request shape; URL keys ``tgpu tmodel tdtype tin
tout``). Empty / None means "not recorded" and nothing is checked for that part.

Staleness (``stale_reasons``): a recorded throughput is stale when the scenario's GPU differs from
``throughput_gpu``, when a caller that knows the model or dtype (the Capacity page) passes one that differs, or
when the scenario's mean input or output tokens per request differ from the recorded ones by more than
``SHAPE_TOLERANCE`` (25 %, relative to the recorded value). A throughput typed by the user (source "user input")
is the user's own assumption and is never called stale.

>>> from calculators.scenario import DEFAULT_SCENARIO, apply_gpu
>>> stale_reasons(DEFAULT_SCENARIO)
[]
>>> stale_reasons(apply_gpu(DEFAULT_SCENARIO, "l40s"))
['GPU: the throughput was measured on NVIDIA H100 SXM 80GB, the scenario uses NVIDIA L40S 48GB']
>>> throughput_kind("roofline estimate (L40S bandwidth, 8B BF16)"), throughput_kind("user input")
('estimate', 'assumption')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from calculators import catalog, gpuprices
from calculators.scenario import Scenario

__all__ = [
    "usd",
    "KINDS",
    "SHAPE_TOLERANCE",
    "TYPED_SOURCE",
    "REESTIMATE_CONCURRENCY",
    "Row",
    "ThroughputContext",
    "throughput_kind",
    "stale_reasons",
    "with_context",
    "run_context",
    "reestimate",
    "rests_on",
    "pct_text",
    "priced_model_label",
]

KINDS = ("assumption", "catalog", "catalog (unverified)", "estimate", "measured")
SHAPE_TOLERANCE = 0.25
TYPED_SOURCE = "user input"  # ui.inputs.read_widgets sets it when the throughput is typed
REESTIMATE_CONCURRENCY = 32  # the Capacity page's default concurrency


@dataclass(frozen=True)
class Row:
    """One input the verdict rests on. ``stale``: why it no longer fits the scenario (None: it fits)."""

    field: str
    value: str
    kind: str
    source: str
    as_of: str = ""
    stale: str | None = None


@dataclass(frozen=True)
class ThroughputContext:
    """Where a throughput was measured or estimated (see the module docstring); "" / None: not recorded."""

    gpu: str = ""
    model: str = ""
    dtype: str = ""
    input_tokens: float | None = None
    output_tokens: float | None = None
    latency: str = ""  # the latency measured there ("TTFT p90 312 ms, TPOT p90 41 ms"); "" for estimates



def throughput_kind(source: str) -> str:
    """The kind of a throughput from its source text: "measured", "estimate" or "assumption".

    >>> throughput_kind("measured: probe run 3, c=8"), throughput_kind("measured-ish: Lambda 2xH100")
    ('measured', 'measured')
    >>> throughput_kind("assumption: the RAG example's 2xH100 figures")
    'assumption'
    """
    head = source.strip().lower()
    if head.startswith("measured"):
        return "measured"
    if head.startswith(("estimate", "roofline estimate", "closed-loop estimate")):
        return "estimate"
    return "assumption"


def with_context(s: Scenario, ctx: ThroughputContext) -> Scenario:
    """``s`` with the throughput's context replaced by ``ctx`` (validated by the scenario)."""
    host = dataclasses.replace(
        s.self_host, throughput_gpu=ctx.gpu, throughput_model=ctx.model, throughput_dtype=ctx.dtype,
        throughput_input_tokens=ctx.input_tokens, throughput_output_tokens=ctx.output_tokens,
        throughput_latency=ctx.latency[:200])
    return dataclasses.replace(s, self_host=host)


_QUANT_DTYPES = {"fp8": "fp8", "awq": "int4-awq", "awq_marlin": "int4-awq", "gptq": "int4-gptq",
                 "gptq_marlin": "int4-gptq"}
_DTYPES = {"bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "half": "fp16", "fp16": "fp16"}


def run_context(run: Mapping[str, Any], gpu_id: str | None) -> ThroughputContext:
    """The context of a probe run's points (``probes.results`` run dict): its model, the weight dtype its
    server was started with (``--quantization`` / ``--dtype``; "" when neither was given: not recorded), its
    workload's request shape and ``gpu_id`` (the catalog id of its GPU, None when not in the catalog).

    >>> run_context({"model": "meta-llama/Llama-3.3-70B-Instruct", "workload": {"input_tokens": 512,
    ...              "output_tokens": 256}, "server": {"serve_args": ["--quantization", "fp8"]}}, "h100-sxm")
    ThroughputContext(gpu='h100-sxm', model='meta-llama/Llama-3.3-70B-Instruct', dtype='fp8', input_tokens=512.0, output_tokens=256.0, latency='')
    """
    args = [str(a) for a in ((run.get("server") or {}).get("serve_args") or [])]
    dtype = ""
    for flag, table in (("--dtype", _DTYPES), ("--quantization", _QUANT_DTYPES)):
        if flag in args[:-1]:
            dtype = table.get(args[args.index(flag) + 1].lower(), dtype)
    work = run.get("workload") or {}

    def tokens(key: str) -> float | None:
        v = work.get(key) if isinstance(work, Mapping) else None
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1e7 else None

    model = run.get("model")
    return ThroughputContext(gpu=gpu_id or "", model=model[:200] if isinstance(model, str) else "", dtype=dtype,
                             input_tokens=tokens("input_tokens"), output_tokens=tokens("output_tokens"))


def _gpu_name(gpu_id: str) -> str:
    g = catalog.gpus().get(gpu_id)
    return g.name if g is not None else gpu_id


def _verb(s: Scenario) -> str:
    return "estimated for" if throughput_kind(s.self_host.throughput_source) == "estimate" else "measured on"


def stale_reasons(s: Scenario, *, model: str | None = None, dtype: str | None = None) -> list[str]:
    """Why the scenario's throughput no longer fits it (empty: it fits, or nothing was recorded to check).

    ``model`` / ``dtype``: the ones the caller deploys, when it knows them (the scenario does not name them).

    >>> from calculators.scenario import DEFAULT_SCENARIO, replace_field
    >>> s = with_context(DEFAULT_SCENARIO, ThroughputContext("h100-sxm", "m", "bf16", 512, 256))
    >>> stale_reasons(s)  # the scenario's 1,500 in / 300 out vs the measured 512 / 256
    ['request shape: measured at 512 in / 256 out tokens, the scenario sends 1,500 in (+193%) / 300 out (+17%); more than 25% apart']
    >>> stale_reasons(replace_field(s, "traffic.input_tokens", 600.0), model="m", dtype="fp8")
    ['dtype: the throughput was measured on bf16 weights, this deployment uses fp8']
    """
    h = s.self_host
    if h.throughput_source.strip() == TYPED_SOURCE:
        return []
    verb = _verb(s)
    out: list[str] = []
    if h.throughput_gpu and h.throughput_gpu != h.gpu:
        out.append(f"GPU: the throughput was {verb} {_gpu_name(h.throughput_gpu)}, the scenario uses "
                   f"{_gpu_name(h.gpu)}")
    if model and h.throughput_model and model != h.throughput_model:
        out.append(f"model: the throughput was {verb} {h.throughput_model}, this deployment runs {model}")
    if dtype and h.throughput_dtype and dtype.lower() != h.throughput_dtype.lower():
        out.append(f"dtype: the throughput was {verb} {h.throughput_dtype} weights, this deployment uses {dtype}")
    parts, far = [], False
    for name, rec, cur in (("in", h.throughput_input_tokens, s.traffic.input_tokens),
                           ("out", h.throughput_output_tokens, s.traffic.output_tokens)):
        if rec is None or rec <= 0:
            continue
        rel = (cur - rec) / rec
        far = far or abs(rel) > SHAPE_TOLERANCE
        parts.append((name, rec, cur, rel))
    if far:
        at = " / ".join(f"{rec:,.0f} {name}" for name, rec, _cur, _rel in parts)
        now = " / ".join(f"{cur:,.0f} {name} ({rel:+.0%})" for name, _rec, cur, rel in parts)
        out.append(f"request shape: {verb.split()[0]} at {at} tokens, the scenario sends {now}; more than "
                   f"{SHAPE_TOLERANCE:.0%} apart")
    return out


def reestimate(s: Scenario, *, model: str | None = None, dtype: str | None = None,
               concurrency: int = REESTIMATE_CONCURRENCY) -> Scenario:
    """``s`` with its throughput replaced by the closed-loop estimate (``calculators.closedloop``) for the
    scenario's GPU, GPUs per replica and mean request shape, for ``model``/``dtype`` (default: the recorded
    ones; dtype "bf16" when none), labelled "estimate: …" with the calibration, and the new context recorded.
    The estimate includes each request's prefill, so ``prefill_tokens_per_s`` is cleared.
    ValueError (one line) when the model is unknown or the deployment does not fit the GPU.

    >>> from calculators.scenario import DEFAULT_SCENARIO, apply_gpu
    >>> new = reestimate(apply_gpu(DEFAULT_SCENARIO, "l40s"))
    >>> new.self_host.throughput_source
    'estimate: closed-loop roofline, Llama-3.1-8B-Instruct fp8, 1x l40s, c=32, 1,500 in / 300 out (calibrated on vLLM 0.26 H100/H200 runs)'
    >>> round(new.self_host.output_tokens_per_s, -1), stale_reasons(new)
    (1180.0, [])
    """
    from calculators import closedloop, modelspec  # noqa: PLC0415  (only on click)
    from calculators.memory import WEIGHT_DTYPES  # noqa: PLC0415

    h = s.self_host
    model_id = model or h.throughput_model
    if not model_id:
        raise ValueError("cannot re-estimate: the model the throughput was for is not recorded")
    arch = modelspec.model(model_id)
    wd = (dtype or h.throughput_dtype or "bf16").lower()
    if wd not in WEIGHT_DTYPES:
        raise ValueError(f"cannot re-estimate: weight dtype {wd!r} is not one of {', '.join(WEIGHT_DTYPES)}")
    i, o = max(1, round(s.traffic.input_tokens)), max(1, round(s.traffic.output_tokens))
    inp = closedloop.ClosedLoopInput(arch, catalog.gpu(h.gpu), h.gpus_per_replica, wd, input_tokens=i,
                                     output_tokens=o, max_model_len=i + o)
    p = closedloop.closed_loop_point(inp, concurrency)
    if p.output_tokens_per_s_est <= 0 or p.running < 1:
        raise ValueError(f"cannot re-estimate: {model_id} {wd} leaves no KV-cache room on "
                         f"{h.gpus_per_replica}x {h.gpu}")
    source = (f"estimate: closed-loop roofline, {model_id.split('/')[-1]} {wd}, {h.gpus_per_replica}x {h.gpu}, "
              f"c={p.running}, {i:,} in / {o:,} out (calibrated on vLLM 0.26 H100/H200 runs)")
    host = dataclasses.replace(h, output_tokens_per_s=round(p.output_tokens_per_s_est, 1),
                               prefill_tokens_per_s=None, throughput_source=source[:200])
    new = dataclasses.replace(s, self_host=host)
    return with_context(new, ThroughputContext(h.gpu, model_id, wd, float(i), float(o)))


def usd(x: float | None, *, cents: bool = False) -> str:
    """Dollars as every page and the brief write them: whole dollars from $100, cents below (always with
    ``cents``, for $ per million tokens), a true minus sign; "n/a" for None.

    >>> usd(1234.5), usd(-0.25), usd(None), usd(1234.5, cents=True)
    ('$1,234', '−$0.25', 'n/a', '$1,234.50')
    """
    if x is None:
        return "n/a"
    sign = "\u2212" if x < 0 else ""
    a = abs(x)
    return f"{sign}${a:,.0f}" if a >= 100 and not cents else f"{sign}${a:,.2f}"


def pct_text(x: float) -> str:
    """A share for a finance reader: never "0%" for a small non-zero share.

    >>> pct_text(0.0), pct_text(0.004), pct_text(0.0123), pct_text(0.456), pct_text(0.9996), pct_text(1.0)
    ('0%', '<1%', '1%', '46%', '>99%', '100%')
    """
    if x == 0:
        return "0%"
    if 0 < abs(x) < 0.01:
        return "<1%" if x > 0 else ">-1%"
    if 0.99 < x < 1:
        return ">99%"
    return f"{x:.0%}"


def priced_model_label(s: Scenario) -> str:
    """The API model the scenario prices, as the pages name it ("custom prices" when all are typed).

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> priced_model_label(DEFAULT_SCENARIO)
    'gpt-6-luna'
    """
    if s.api.model is None:
        return "custom prices"
    return f"{s.api.provider}:{s.api.model}" if s.api.provider else s.api.model


def _api_row(s: Scenario, rates: object | None) -> Row:
    a = s.api
    prices = f"${a.input_usd_per_mtok:g} in / ${a.cached_input_usd_per_mtok:g} cached / ${a.output_usd_per_mtok:g} out per M"
    mode = " (batch)" if a.batch else ""
    if a.model is None:
        return Row("API model and prices", f"custom: {prices}", "assumption", "typed by you")
    from calculators import apiprices  # noqa: PLC0415  (imports genai-prices)

    info = apiprices.data_info()
    typed = [f.removesuffix("_usd_per_mtok") for f in a.typed]
    provider = getattr(rates, "provider", "") or a.provider
    who = f"{provider}:{a.model}" if provider else a.model
    if len(typed) >= 3:
        return Row("API model and prices", f"{who}{mode}: {prices}", "assumption",
                   f"typed by you ({', '.join(typed)}); the model name is only a label")
    ov = catalog.api_overlay().get(a.model)
    kind = "catalog (unverified)" if ov is not None and ov.check == "not in data" else "catalog"
    src = info.label + (f"; typed by you: {', '.join(typed)}" if typed else "")
    return Row("API model and prices", f"{who}{mode}: {prices}", kind, src, info.date)


def _gpu_price_row(s: Scenario) -> Row:
    h = s.self_host
    value = f"${h.gpu_usd_per_hour:g}/GPU-hour"
    if h.gpu_price_tier == "owned":  # derived from owning servers (calculators.ownership): its inputs are assumptions
        power = "measured" if h.own_power_kind.startswith("measured") else \
            "typed" if h.own_power_w is not None else "TDP x load factor"
        return Row("GPU price", value, "assumption",
                   f"derived from owning servers: purchase, energy ({power} power), hosting and people "
                   "(calculators/ownership.py; defaults in ownership.DEFAULTS)")
    rows = gpuprices.prices(h.gpu)
    if rows and abs(h.gpu_usd_per_hour - gpuprices.default_usd_per_hour(h.gpu)) < 1e-9:
        od = [r for r in rows if r.tier == gpuprices.DEFAULT_TIER] or rows
        kind = "catalog (unverified)" if any(r.estimate for r in od) else "catalog"
        providers = ", ".join(sorted({r.provider for r in od}))
        return Row("GPU price", value, kind, f"{gpuprices.DEFAULT_STATISTIC} ({providers})",
                   max(r.as_of for r in od))
    for r in rows:
        if abs(r.usd_per_gpu_hour - h.gpu_usd_per_hour) < 1e-9:
            return Row("GPU price", value, "catalog (unverified)" if r.estimate else "catalog",
                       f"{r.provider} {r.tier} ({r.source})", r.as_of)
    return Row("GPU price", value, "assumption", "typed by you")


def _throughput_row(s: Scenario, stale: list[str]) -> Row:
    h = s.self_host
    kind = throughput_kind(h.throughput_source)
    ctx = [x for x in (_gpu_name(h.throughput_gpu) if h.throughput_gpu else "",
                       h.throughput_model, h.throughput_dtype) if x]
    if h.throughput_input_tokens is not None and h.throughput_output_tokens is not None:
        ctx.append(f"{h.throughput_input_tokens:,.0f} in / {h.throughput_output_tokens:,.0f} out tokens")
    if h.throughput_latency:
        ctx.append(f"measured latency {h.throughput_latency}")
    if h.throughput_source.strip() == TYPED_SOURCE:  # a typed value: an older point's context is not its own
        return Row("Self-host throughput", f"{h.output_tokens_per_s:,.0f} output tok/s per replica", kind,
                   "typed by you")
    source = h.throughput_source
    if kind != "assumption" or ctx:
        source += f" [{'; '.join(ctx) if ctx else 'GPU, model and shape not recorded'}]"
    if kind == "estimate" and "calibrat" not in source:
        source += " (calibration: see benchmarks/README.md, Prediction error)"
    return Row("Self-host throughput", f"{h.output_tokens_per_s:,.0f} output tok/s per replica", kind, source,
               stale="; ".join(stale) or None)


def rests_on(s: Scenario, rates: object | None = None, *, model: str | None = None,
             dtype: str | None = None) -> list[Row]:
    """Every input the verdict rests on, built from ``s`` (``rates``: the ``cost.ApiRates`` applied, to name
    the provider the price data picked). ``model``/``dtype`` as in ``stale_reasons``.

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> [(r.field, r.kind) for r in rests_on(DEFAULT_SCENARIO)][:4]
    [('API model and prices', 'catalog'), ('GPU', 'catalog'), ('GPU price', 'catalog'), ('Self-host throughput', 'measured')]
    """
    h, t = s.self_host, s.traffic
    g = catalog.gpu(h.gpu)
    rows = [_api_row(s, rates),
            Row("GPU", f"{h.gpus_per_replica}x {g.name} per replica",
                "catalog (unverified)" if g.estimate else "catalog", g.source, g.as_of),
            _gpu_price_row(s),
            _throughput_row(s, stale_reasons(s, model=model, dtype=dtype))]
    if h.prefill_tokens_per_s is not None:
        _, sep, said = h.throughput_source.partition("prefill: ")  # "…; prefill: roofline estimate" names its own
        rows.append(Row("Prefill throughput", f"{h.prefill_tokens_per_s:,.0f} tok/s per replica",
                        throughput_kind(said if sep else h.throughput_source), h.throughput_source))
    shape = f"{t.requests_per_day:,.0f} requests/day, {t.input_tokens:,.0f} in / {t.output_tokens:,.0f} out tokens"
    if t.trace_name:
        rows.append(Row("Traffic", shape, "measured", f"trace {t.trace_name}"))
    else:
        rows.append(Row("Traffic", shape, "assumption", "typed by you"))
    rows.append(Row("Peak-to-mean", f"{t.peak_to_mean:g}", "assumption", "typed by you (capacity is sized for it)"))
    rows.append(Row("Ops", f"${h.ops_usd_per_month:,.0f}/month", "assumption", "typed by you (people time)"))
    return rows
