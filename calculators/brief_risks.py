"""What the decision brief checks about a scenario (``calculators.brief``): where its throughput came from (the
operating point and its run), the KV-cache headroom at that point, and the risks that apply.

Risks (``risks``): the seed article's "When NOT to self-host" list (under 1,000 requests/day; frontier quality
wanted; no GPU expertise; downtime: a single replica with no API fallback), KV-cache headroom (one replica's
KV cache, vLLM 0.26 accounting, against the concurrency the throughput assumes: below ``KV_HEADROOM_MIN``
requests queue or are preempted at peak), unverified or retiring prices, and a stale throughput.

>>> from calculators.scenario import DEFAULT_SCENARIO
>>> from calculators.cost import evaluate
>>> [r["risk"] for r in risks(DEFAULT_SCENARIO, evaluate(DEFAULT_SCENARIO)) if r["applies"]]
['Single-replica outage']
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from calculators import catalog, provenance
from calculators.cost import LOW_VOLUME_REQUESTS_PER_DAY, Report
from calculators.scenario import Scenario

__all__ = ["ARTICLE", "KV_HEADROOM_MIN", "operating_point_info", "kv_headroom", "risks"]

ARTICLE = ("\u201cSelf-host a high-throughput inference server with vLLM\u201d (the seed article, last updated "
           "2026-04-29), section \u201cWhen NOT to self-host\u201d")
KV_HEADROOM_MIN = 1.25  # KV-cache streams / streams the throughput assumes below this: a risk


_RUN = re.compile(r"\bmeasured run (\S+?)[,\s]")
_CONC = re.compile(r"\bc\s*([=≈])\s*([\d.,]+)")


def operating_point_info(s: Scenario) -> dict[str, Any]:
    """Where the throughput comes from: its kind, source text, the run id and concurrency the source names
    ("measured run 7 at SLO ..., c≈5 interpolated" as ``calculators.operating.source_text`` writes it), the
    recorded GPU/model/dtype/shape and the share of requests meeting the SLO (None: not recorded).

    >>> from calculators.scenario import DEFAULT_SCENARIO, replace_field
    >>> s = replace_field(DEFAULT_SCENARIO, "self_host.throughput_source",
    ...                   "measured run 7 at SLO TTFT p90 ≤ 100 ms, c≈5 interpolated (512 in / 256 out tokens)")
    >>> i = operating_point_info(s); i["kind"], i["run_id"], i["concurrency"], i["slo"]
    ('measured', '7', 5.0, 'TTFT p90 ≤ 100 ms')
    """
    h = s.self_host
    src = h.throughput_source
    run = _RUN.search(src + " ")
    conc = _CONC.search(src)
    slo = None
    m = re.search(r"\bat SLO (.+?), (?:c\s*[=≈]|≈?[\d.]+ req/s)", src)
    if m:
        slo = m.group(1)
    return {
        "kind": provenance.throughput_kind(src),
        "source": src,
        "output_tokens_per_s": h.output_tokens_per_s,
        "prefill_tokens_per_s": h.prefill_tokens_per_s,
        "run_id": run.group(1) if run else None,
        "concurrency": float(conc.group(2).replace(",", "")) if conc else None,
        "slo": slo,
        "slo_good_fraction": h.slo_good_fraction,
        "gpu": h.throughput_gpu or None,
        "model": h.throughput_model or None,
        "dtype": h.throughput_dtype or None,
        "input_tokens": h.throughput_input_tokens,
        "output_tokens": h.throughput_output_tokens,
        "latency": (h.throughput_latency or None) if provenance.throughput_kind(src) == "measured" else None,
    }


def kv_headroom(s: Scenario, concurrency: float | None = None) -> dict[str, Any]:
    """How many requests of the scenario's mean shape the KV cache of one replica holds at once (vLLM 0.26
    accounting, ``calculators.memory.fit`` at TP = GPUs per replica), against the concurrency the throughput
    assumes. ``checked`` False with ``why`` when the model is not recorded or not in the catalog.

    >>> from calculators.scenario import load_toml
    >>> k = kv_headroom(load_toml("scenarios/rag-assistant-70b.toml"), concurrency=32)
    >>> k["checked"], k["streams"], round(k["headroom"], 2)
    (True, 38, 1.19)
    """
    from calculators import launch, memory, modelspec  # noqa: PLC0415 - the model catalog only when needed

    h, t = s.self_host, s.traffic
    if not h.throughput_model:
        return {"checked": False, "why": "the model the throughput is for is not recorded in the scenario"}
    try:
        arch = modelspec.model(h.throughput_model)
        dtype = (h.throughput_dtype or "bf16").lower()
        r = memory.fit(memory.FitInput(arch, catalog.gpu(h.gpu), h.gpus_per_replica, dtype))
        request = max(1, min(math.ceil(t.input_tokens + t.output_tokens), r.max_model_len))
        streams = launch.kv_room_sequences(r.kv_capacity_tokens, request)
    except ValueError as e:
        return {"checked": False, "why": " ".join(str(e).splitlines())[:200]}
    room = None if not concurrency else streams / concurrency
    return {"checked": True, "model": h.throughput_model, "dtype": dtype, "kv_capacity_tokens": r.kv_capacity_tokens,
            "request_tokens": request, "streams": streams, "concurrency": concurrency, "headroom": room,
            "fits": r.verdict}


def risks(s: Scenario, report: Report, rests: Sequence[provenance.Row] | None = None,
          op: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every risk the brief checks: ``{"risk", "applies", "why", "source"}``, the ones that apply first.

    The article's four (under 1,000 requests/day; frontier quality wanted; no GPU expertise; downtime: a
    single replica with no API fallback at the current volume), KV-cache headroom, unverified or retired
    prices, and a stale throughput.
    """
    t, h, ctx = s.traffic, s.self_host, s.context
    rests = list(rests if rests is not None else provenance.rests_on(s, report.rates))
    op = op if op is not None else operating_point_info(s)
    out: list[dict[str, Any]] = []

    def add(name: str, applies: bool, why: str, source: str) -> None:
        out.append({"risk": name, "applies": bool(applies), "why": why, "source": source})

    add("Low volume", t.requests_per_day < LOW_VOLUME_REQUESTS_PER_DAY,
        f"{t.requests_per_day:,.0f} requests/day; under {LOW_VOLUME_REQUESTS_PER_DAY:,.0f}/day the API is "
        "cheaper, simpler and more reliable", ARTICLE)
    model = catalog.api_overlay().get(s.api.model or "")
    frontier = ctx.needs_frontier_quality or (model is not None and model.tier == "frontier")
    add("Frontier quality", frontier,
        "the compared API model is frontier tier, or frontier quality is needed: no open-weight model matches it "
        "on hard reasoning" if frontier else "frontier quality is not required and the API model is not frontier "
        "tier", ARTICLE)
    add("No GPU expertise", not ctx.has_gpu_expertise,
        "the team has no GPU expertise: CUDA mismatches, NCCL errors and kernel crashes need someone comfortable "
        "with Linux and CUDA" if not ctx.has_gpu_expertise else "the scenario says the team has GPU expertise",
        ARTICLE)
    kv = kv_headroom(s, op.get("concurrency"))
    if not kv["checked"]:
        add("KV-cache headroom", False, f"not checked: {kv['why']}", "calculators.memory (vLLM 0.26 accounting)")
    else:
        low = kv["headroom"] is not None and kv["headroom"] < KV_HEADROOM_MIN
        none = kv["streams"] < 1
        conc = (f"the throughput assumes {kv['concurrency']:g} streams at once: headroom {kv['headroom']:.2f}x"
                if kv["headroom"] is not None else "the throughput's concurrency is not recorded")
        add("KV-cache headroom", low or none,
            f"one replica's KV cache ({kv['kv_capacity_tokens']:,} tokens, {kv['model']} {kv['dtype']}) holds "
            f"{kv['streams']:,} requests of {kv['request_tokens']:,} tokens at once; {conc}"
            + (f" (below {KV_HEADROOM_MIN:g}x: requests queue or are preempted at peak)" if low else ""),
            "calculators.memory (vLLM 0.26 accounting)")
    r = report.self_host
    single = r.replicas < 2 and h.fallback_fraction == 0
    add("Single-replica outage", single,
        f"{r.replicas:,} replica (minimum {h.min_replicas}) serves the current volume with no API fallback: one "
        "failure stops the service; redundancy is real ops investment" if single else
        f"{r.replicas:,} replicas (minimum {h.min_replicas}), API fallback {h.fallback_fraction:.0%}",
        ARTICLE + " (\u201cYou can\u2019t tolerate downtime\u201d) and \u201cAlways have a fallback to API\u201d")
    unverified = [f"{row.field} ({row.source})" for row in rests if row.kind == "catalog (unverified)"]
    rates = report.rates
    if rates is not None and rates.retires:
        unverified.append(f"the API model {'was shut down' if rates.retired else 'shuts down'} on {rates.retires}"
                          + (f" (successor {rates.successor})" if rates.successor else ""))
    add("Unverified prices", bool(unverified),
        "; ".join(unverified) if unverified else "every catalog price used is from a checked source",
        "calculators/data/*.csv and the price data (columns source, as_of)")
    stale = provenance.stale_reasons(s)
    add("Stale throughput", bool(stale), "; ".join(stale) if stale else "the throughput fits the scenario's GPU "
        "and request shape (or was typed)", "calculators.provenance")
    return sorted(out, key=lambda x: not x["applies"])
