"""Launch plan caps (issue 9): --max-num-seqs from the KV room at the expected request length and vLLM's
default; --gpu-memory-utilization capped by the free memory at start and the CUDA-graph reserve."""

from __future__ import annotations

import pytest

from calculators.catalog import gpu
from calculators.launch import (
    cudagraph_reserve_gib,
    free_gib_at_start_default,
    gpu_memory_utilization_cap,
    kv_room_sequences,
    plan_launch,
)
from calculators.memory import FitInput, fit
from calculators.modelspec import model

L8 = model("meta-llama/Llama-3.1-8B-Instruct")
L70 = model("meta-llama/Llama-3.3-70B-Instruct")
H100 = gpu("h100-sxm")


def _args(plan):
    return dict(zip(plan.serve_args, plan.serve_args[1:], strict=False))


def test_8b_at_its_default_context_is_not_throttled():
    # issue 9: the old rule gave 7 (KV room at half of 131,072 tokens); the repo's H100 run reached c=128
    inp = FitInput(L8, H100)
    assert inp.context_tokens == 131_072
    p = plan_launch(inp)
    assert int(_args(p)["--max-num-seqs"]) == p.max_num_seqs >= 128
    # 463,232 KV tokens = 28,952 blocks; a 768-token request holds 48 of them -> 603 requests
    assert p.max_num_seqs == fit(inp).kv_capacity_tokens // 16 // 48 == 603


def test_70b_fp8_on_one_h100_at_4096_allows_eight():
    # the repo's H100 run reached c=8 on this shape with no preemption (benchmarks/README.md); old rule: 4
    p = plan_launch(FitInput(L70, H100, weight_dtype="fp8", max_model_len=4096))
    assert p.max_num_seqs >= 8
    assert p.max_num_seqs == kv_room_sequences(8_816, 768) == 11  # 551 blocks // 48


def test_the_expected_request_length_sets_the_room():
    inp = FitInput(L70, H100, weight_dtype="fp8", max_model_len=4096)
    long_requests = plan_launch(inp, input_tokens=2048, output_tokens=2048)
    assert long_requests.max_num_seqs == 551 // 256 == 2 and long_requests.expected_request_tokens == 4096
    # a request longer than max_model_len is clamped to it (vLLM rejects longer ones)
    assert plan_launch(inp, input_tokens=8000, output_tokens=8000).expected_request_tokens == 4096
    with pytest.raises(ValueError, match="output_tokens must be >= 1"):
        plan_launch(inp, output_tokens=0)


def test_vllm_default_and_batched_tokens_bound_the_room():
    # an H200 holds ~1,200 requests of 768 tokens; vLLM's own default (1024 on >= 70 GiB GPUs) is the limit
    p = plan_launch(FitInput(L8, gpu("h200"), max_model_len=4096))
    assert p.max_num_seqs == 1024
    assert "set by vLLM's default 1024" in next(f.reason for f in p.flags if f.name == "--max-num-seqs")
    # vLLM refuses max_num_batched_tokens < max_num_seqs
    q = plan_launch(FitInput(L8, H100, max_model_len=4096, max_num_batched_tokens=256))
    assert q.max_num_seqs == 256
    # smaller GPUs: vLLM's default is 256
    assert plan_launch(FitInput(L8, gpu("l40s"), weight_dtype="fp8", max_model_len=4096)).max_num_seqs <= 256


def test_cudagraph_reserve_matches_the_logged_captures():
    # vLLM 0.26.0 H100 logs at TP=1: 0.98 GiB (Llama-8B shape), 1.92 GiB (Llama-70B fp8); TP=2 logged 1.51
    assert cudagraph_reserve_gib(L8) == pytest.approx(0.98, abs=0.005)
    assert cudagraph_reserve_gib(L70) == pytest.approx(1.92, abs=0.005)
    assert cudagraph_reserve_gib(L70) >= 1.51


def test_utilization_cap_by_hand():
    # idle H100: 79.18 - 0.52 = 78.66 GiB free (as logged); (78.66 - 0.98 - 0.146) / 79.18 = 0.979 -> 0.97
    assert free_gib_at_start_default(H100) == pytest.approx(78.66)
    assert gpu_memory_utilization_cap(L8, H100) == 0.97
    # the TP=2 log: 77.64 GiB free per GPU; 0.95 started there, and the cap says 0.95 is the most
    assert gpu_memory_utilization_cap(L70, H100, 2, free_gib_at_start=77.64) == 0.95
    assert gpu_memory_utilization_cap(L70, H100, 2) == 0.95
    with pytest.raises(ValueError, match="free_gib_at_start"):
        gpu_memory_utilization_cap(L8, H100, free_gib_at_start=100.0)


def test_utilization_past_the_free_memory_is_lowered_with_a_reason():
    p = plan_launch(FitInput(L8, H100, max_model_len=4096, gpu_memory_utilization=1.0))
    assert _args(p)["--gpu-memory-utilization"] == "0.97"
    assert any("lowered from 1 to 0.97" in w for w in p.warnings)
    # a GPU that another process half fills: the measured free memory caps it, and the KV room follows
    busy = plan_launch(FitInput(L8, H100, max_model_len=4096), free_gib_at_start=40.0)
    assert _args(busy)["--gpu-memory-utilization"] == "0.49"
    assert busy.max_num_seqs == fit(FitInput(L8, H100, max_model_len=4096, gpu_memory_utilization=0.49)
                                    ).kv_capacity_tokens // 16 // 48
    assert busy.max_num_seqs < plan_launch(FitInput(L8, H100, max_model_len=4096)).max_num_seqs
    # vLLM's default 0.92 is under the idle cap: kept, and the reason shows the cap
    idle = plan_launch(FitInput(L8, H100, max_model_len=4096))
    reason = next(f.reason for f in idle.flags if f.name == "--gpu-memory-utilization")
    assert _args(idle)["--gpu-memory-utilization"] == "0.92" and "cap 0.97" in reason and "CUDA graphs" in reason


def test_no_free_memory_says_it_will_not_start():
    p = plan_launch(FitInput(L8, H100, max_model_len=4096), free_gib_at_start=0.5)
    assert p.flags == () and p.gpu_memory_utilization_cap == 0.0
    assert p.will_not_start.startswith("0.50 GiB free per GPU at start does not hold even the 0.98 GiB of CUDA graphs")


def test_a_busy_gpu_that_leaves_too_little_for_the_weights_will_not_start():
    # the 8B needs 14.96 GiB of weights + 1.12 of activations + 0.22 non-torch = 16.3 GiB in the budget.
    # 20 GiB free: cap floor((20 - 0.98 - 0.15) / 79.18) = 0.23, an 18.2 GiB budget: it starts.
    # 16 GiB free: cap 0.18, a 14.3 GiB budget: it will not start, and the plan says so instead of a command.
    fits = plan_launch(FitInput(L8, H100, max_model_len=4096), free_gib_at_start=20.0)
    assert not fits.will_not_start and _args(fits)["--gpu-memory-utilization"] == "0.23"
    p = plan_launch(FitInput(L8, H100, max_model_len=4096), free_gib_at_start=16.0)
    assert p.flags == () and p.will_not_start.startswith("weights + activations need 16.3 GiB per GPU")
    assert "at --gpu-memory-utilization 0.18" in p.will_not_start
    assert any("asked 0.92" in c for c in p.caps)  # the cap that made it not start is named


def test_every_cap_is_listed_with_its_reason():
    p = plan_launch(FitInput(L70, H100, weight_dtype="fp8", max_model_len=32768, gpu_memory_utilization=1.0))
    text = "\n".join(p.caps)
    assert "--gpu-memory-utilization 0.96 (asked 1)" in text
    assert "--max-model-len" in text and "(asked 32,768)" in text
    assert f"--max-num-seqs {p.max_num_seqs:,}: set by the KV room" in text
    idle = plan_launch(FitInput(L8, H100, max_model_len=4096))
    assert idle.caps[0].startswith("--gpu-memory-utilization 0.92: within the cap 0.97")
    assert idle.caps[-1].startswith("--max-num-seqs 603: set by the KV room") and "vLLM's default is 1,024" in idle.caps[-1]
