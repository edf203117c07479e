"""What vLLM says about itself at startup: memory split, KV capacity and where the cold start went.

The H100 reference runs (benchmarks/README.md) showed that the numbers a capacity plan needs are only in the
server log, not in ``/metrics``: weights, the activation peak, CUDA-graph memory (which vLLM 0.26 does NOT
count inside ``--gpu-memory-utilization``: the 8B run used 0.98 GiB on top of the 0.92 × 79.18 GiB it was
asked for), the KV cache in GiB and tokens, and how much of a 152 s cold start was ``torch.compile``.
:func:`parse_startup` reads them so the run JSON can carry them (``run["startup"]``).

Log lines are free text, so this is the one place that uses regular expressions; every field is optional
and a line vLLM does not print (another release, the CPU build) leaves it ``None``.

>>> s = parse_startup('''
... INFO [model_runner.py:305] Model loading took 15.0 GiB and 2.312877 seconds
... INFO [monitor.py:53] torch.compile took 30.41 s in total
... INFO [gpu_worker.py:560] Available KV cache memory: 56.51 GiB
... INFO [kv_cache_utils.py:2177] GPU KV cache size: 462,944 tokens
... INFO [kv_cache_utils.py:2178] Maximum concurrency for 4,096 tokens per request: 113.02x
... INFO [model_runner.py:747] Graph capturing finished in 7 secs, took 0.98 GiB
... INFO [core.py:340] init engine (profile, create kv cache, warmup model) took 63.04 s (compilation: 30.41 s)
... ''')
>>> s["kv_cache_tokens"], s["kv_cache_gib"], s["weights_gib"], s["cuda_graph_gib"], s["torch_compile_s"]
(462944, 56.51, 15.0, 0.98, 30.41)
>>> s["device"], s["max_concurrency"], s["max_concurrency_tokens_per_request"]
('GPU', 113.02, 4096)
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["parse_startup", "startup_notes", "STARTUP_KEYS"]

_NUM = r"([0-9][0-9,]*(?:\.[0-9]+)?)"

# (key, pattern, group -> converter); the last match in the log wins (a restarted engine logs again).
_PATTERNS: list[tuple[str, re.Pattern[str], int, type]] = [
    ("engine_version", re.compile(r"Initializing a V1 LLM engine \(v([^)]+)\)"), 1, str),
    ("weights_gib", re.compile(r"Model loading took " + _NUM + r" GiB"), 1, float),
    ("weights_load_s", re.compile(r"Model loading took [0-9.]+ GiB and " + _NUM + r" seconds"), 1, float),
    ("kv_cache_gib", re.compile(r"Available KV cache memory: " + _NUM + r" GiB"), 1, float),
    ("kv_cache_tokens", re.compile(r"(?:GPU|CPU|XPU|TPU) KV cache size: " + _NUM + r" tokens"), 1, int),
    ("max_concurrency_tokens_per_request",
     re.compile(r"Maximum concurrency for " + _NUM + r" tokens per request"), 1, int),
    ("max_concurrency", re.compile(r"Maximum concurrency for [0-9,]+ tokens per request: " + _NUM + r"x"), 1,
     float),
    ("torch_compile_s", re.compile(r"torch\.compile took " + _NUM + r" s in total"), 1, float),
    ("cuda_graph_capture_s", re.compile(r"Graph capturing finished in " + _NUM + r" secs"), 1, float),
    ("cuda_graph_gib", re.compile(r"Graph capturing finished in [0-9.]+ secs, took " + _NUM + r" GiB"), 1, float),
    ("init_engine_s", re.compile(r"init engine \(profile, create kv cache, warmup model\) took " + _NUM + r" s"), 1,
     float),
    ("device_free_gib", re.compile(r"Free memory on device \(" + _NUM + r"/[0-9.]+ GiB\)"), 1, float),
    ("device_total_gib", re.compile(r"Free memory on device \([0-9.]+/" + _NUM + r" GiB\)"), 1, float),
    ("gpu_memory_utilization", re.compile(r"Desired GPU memory utilization is \(" + _NUM), 1, float),
    ("peak_activation_gib", re.compile(r"GiB for weight, " + _NUM + r" GiB for peak activation"), 1, float),
    ("non_torch_gib", re.compile(r" " + _NUM + r" GiB for non-torch memory"), 1, float),
]
_DEVICE = re.compile(r"\b(GPU|CPU|XPU|TPU) KV cache size:")

STARTUP_KEYS = ("device", *(k for k, *_ in _PATTERNS))


def _convert(text: str, kind: type) -> Any:
    return kind(text.replace(",", "")) if kind is not str else text


def parse_startup(log_text: str) -> dict[str, Any]:
    """Startup facts from a vLLM server log; every key of :data:`STARTUP_KEYS`, ``None`` when not logged.

    ``device`` is "GPU" or "CPU" (from the KV-cache line). Sizes in GiB and times in seconds as vLLM prints them.

    >>> parse_startup("CPU KV cache size: 1,048,576 tokens, Maximum concurrency for 512 tokens per request: "
    ...               "2048.00x")["kv_cache_tokens"]
    1048576
    >>> parse_startup("")["weights_gib"] is None
    True
    """
    out: dict[str, Any] = dict.fromkeys(STARTUP_KEYS)
    devices = _DEVICE.findall(log_text)
    out["device"] = devices[-1] if devices else None
    for key, pattern, group, kind in _PATTERNS:
        matches = list(pattern.finditer(log_text))
        if matches:
            out[key] = _convert(matches[-1].group(group), kind)
    return out


def startup_notes(s: dict[str, Any]) -> list[str]:
    """Plain-language notes on a parsed startup: where the cold start went, memory outside the budget.

    >>> startup_notes({"kv_cache_tokens": 8576, "kv_cache_gib": 2.62, "max_concurrency": 2.09,
    ...                "max_concurrency_tokens_per_request": 4096, "torch_compile_s": 111.07,
    ...                "init_engine_s": 150.45, "cuda_graph_gib": 1.92, "gpu_memory_utilization": 0.92,
    ...                "device_total_gib": 79.18})  # doctest: +NORMALIZE_WHITESPACE
    ['vLLM KV cache: 8,576 tokens (2.62 GiB), room for 2.09 requests of 4,096 tokens at once',
     'engine init 150.4 s, of which torch.compile 111.1 s (a warm compile cache or --enforce-eager shortens it)',
     'CUDA graphs took 1.92 GiB outside --gpu-memory-utilization 0.92: the server uses about 74.77 of 79.18 GiB']
    """
    notes = []
    if s.get("kv_cache_tokens") is not None:
        gib = f" ({s['kv_cache_gib']:.2f} GiB)" if s.get("kv_cache_gib") is not None else ""
        conc = ""
        if s.get("max_concurrency") is not None and s.get("max_concurrency_tokens_per_request"):
            conc = (f", room for {s['max_concurrency']:g} requests of "
                    f"{s['max_concurrency_tokens_per_request']:,} tokens at once")
        notes.append(f"vLLM KV cache: {s['kv_cache_tokens']:,} tokens{gib}{conc}")
    if s.get("init_engine_s") is not None and s.get("torch_compile_s") is not None:
        notes.append(f"engine init {s['init_engine_s']:.1f} s, of which torch.compile {s['torch_compile_s']:.1f} s "
                     "(a warm compile cache or --enforce-eager shortens it)")
    util, total, graphs = s.get("gpu_memory_utilization"), s.get("device_total_gib"), s.get("cuda_graph_gib")
    if util is not None and total is not None and graphs:
        notes.append(f"CUDA graphs took {graphs:.2f} GiB outside --gpu-memory-utilization {util:g}: the server "
                     f"uses about {util * total + graphs:.2f} of {total:.2f} GiB")
    return notes
