"""Launch plan: argv shape, flags chosen from the fit, warnings, pinned image."""

from __future__ import annotations

import pytest

from calculators.catalog import gpu
from calculators.launch import IMAGE, plan_launch
from calculators.memory import FitInput, fit
from calculators.modelspec import model

L8 = model("meta-llama/Llama-3.1-8B-Instruct")
L70 = model("meta-llama/Llama-3.3-70B-Instruct")
REMOVED_FLAGS = {"--num-scheduler-steps", "--use-v2-block-manager", "--disable-log-requests"}


def _args(plan):
    return dict(zip(plan.serve_args[::1], plan.serve_args[1:], strict=False))


def test_argv_is_a_list_of_strings_and_pins_the_image():
    p = plan_launch(FitInput(L8, gpu("h100-sxm"), max_model_len=4096))
    argv = p.vllm_serve_argv()
    assert argv[:3] == ["vllm", "serve", L8.id] and all(isinstance(a, str) for a in argv)
    d = p.docker_argv(hf_cache="/data/hf")
    assert IMAGE == "vllm/vllm-openai:v0.26.0" and IMAGE in d
    assert d[d.index(IMAGE) + 1] == L8.id and d[-len(p.serve_args):] == list(p.serve_args)
    assert "/data/hf:/root/.cache/huggingface" in d
    assert not REMOVED_FLAGS & set(argv)


def test_flags_follow_the_analysis():
    inp = FitInput(L70, gpu("h100-sxm"), 2, "fp8", "fp8", max_model_len=16384, gpu_memory_utilization=0.9)
    p = plan_launch(inp, enable_lora=True, max_lora_rank=32, max_loras=2)
    a = _args(p)
    assert a["--tensor-parallel-size"] == "2" and a["--max-model-len"] == "16384"
    assert a["--gpu-memory-utilization"] == "0.9" and a["--quantization"] == "fp8"
    assert a["--kv-cache-dtype"] == "fp8" and a["--max-lora-rank"] == "32" and a["--max-loras"] == "2"
    assert {"--enable-lora", "--enable-prefix-caching", "--enable-chunked-prefill"} <= set(p.serve_args)
    assert all(f.reason for f in p.flags)
    # the KV room at the expected request (512 + 256 tokens, 48 blocks), within vLLM's default of 1024
    assert int(a["--max-num-seqs"]) == min(fit(inp).kv_capacity_tokens // 16 // 48, 1024) == p.max_num_seqs


def test_short_context_lowers_max_model_len():
    p = plan_launch(FitInput(L70, gpu("h100-sxm"), weight_dtype="fp8", max_model_len=32768))
    lowered = int(_args(p)["--max-model-len"])
    assert lowered < 32768 and fit(FitInput(L70, gpu("h100-sxm"), weight_dtype="fp8", max_model_len=lowered)).fits
    assert any("lowered" in w for w in p.warnings)


def test_warnings_cover_the_failure_modes():
    p = plan_launch(FitInput(L70, gpu("h100-sxm"), weight_dtype="fp8", max_model_len=4096))
    text = " ".join(p.warnings)
    for phrase in ("OOM", "prefill latency", "fragmentation", "0.95", "--num-scheduler-steps"):
        assert phrase in text
    bad = plan_launch(FitInput(L70, gpu("h100-sxm"), max_model_len=4096))
    # bf16 70B on one H100: no command at all, the reason and what would fit instead (issue 9)
    assert bad.flags == () and bad.will_not_start.startswith("weights + activations need 133.9 GiB per GPU")
    assert "72.8 GiB budget" in bad.will_not_start and any("fp8" in f for f in bad.fixes)
    with pytest.raises(ValueError, match="will not start: weights"):
        bad.vllm_serve_argv()
    with pytest.raises(ValueError, match="will not start"):
        bad.docker_argv()


def test_bad_lora_settings():
    with pytest.raises(ValueError, match="max_lora_rank"):
        plan_launch(FitInput(L8, gpu("h100-sxm"), max_model_len=4096), enable_lora=True, max_lora_rank=0)
    with pytest.raises(ValueError, match="port"):
        plan_launch(FitInput(L8, gpu("h100-sxm"), max_model_len=4096)).docker_argv(port=70000)


def test_lora_flags_follow_the_fit_input():
    p = plan_launch(FitInput(L8, gpu("h100-sxm"), max_model_len=4096, max_loras=3, max_lora_rank=32))
    a = _args(p)
    assert "--enable-lora" in p.serve_args and a["--max-loras"] == "3" and a["--max-lora-rank"] == "32"
    assert "--enable-lora" not in plan_launch(FitInput(L8, gpu("h100-sxm"), max_model_len=4096)).serve_args


def test_commands_bind_to_loopback_by_default():
    from calculators.catalog import gpu as _gpu
    from calculators.launch import plan_launch as _plan
    from calculators.memory import FitInput as _Fit
    from calculators.modelspec import model as _model

    plan = _plan(_Fit(_model("meta-llama/Llama-3.1-8B-Instruct"), _gpu("h100-sxm"), max_model_len=4096))
    argv = plan.vllm_serve_argv()
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    docker = plan.docker_argv(port=8001)
    assert docker[docker.index("-p") + 1] == "127.0.0.1:8001:8000"
    assert "--host" not in plan.serve_args  # the probe sets host and port itself, last
