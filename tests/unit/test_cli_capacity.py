"""python -m calculators fit|roofline|claim: JSON keys, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculators.__main__ import main as dispatch

CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"


def _run(capsys, *argv):
    rc = dispatch(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_done_when_70b_bf16_does_not_fit_and_says_what_would(capsys):
    rc, out, _ = _run(capsys, "fit", "--model", "meta-llama/Llama-3.3-70B-Instruct", "--gpu", "h100-sxm",
                      "--dtype", "bf16", "--json")
    d = json.loads(out)
    assert rc == 0 and d["fits"] is False and d["verdict"] == "does-not-fit"
    for key in ("weights_gib", "kv_bytes_per_token", "kv_capacity_tokens", "max_concurrent_sequences", "reasons"):
        assert key in d
    assert any("fp8" in f for f in d["fixes"]) and any("TP=2" in f for f in d["fixes"])


def test_fit_with_a_config_file_and_options(capsys):
    rc, out, _ = _run(capsys, "fit", "--model", str(CONFIGS / "llama-3.1-8b.json"), "--gpu", "h100-sxm",
                      "--kv-cache-dtype", "fp8", "--max-model-len", "8192", "--gpu-memory-utilization", "0.8", "--json")
    d = json.loads(out)
    assert rc == 0 and d["fits"] and d["kv_bytes_per_token"] == 65_536 and d["gpu_memory_utilization"] == 0.8
    assert d["launch"]["serve_args"][:2] == ["--tensor-parallel-size", "1"]


def test_roofline_json(capsys):
    rc, out, _ = _run(capsys, "roofline", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm",
                      "--concurrency", "1,8,32", "--json")
    d = json.loads(out)
    assert rc == 0 and [p["concurrency"] for p in d["points"]] == [1, 8, 32]
    assert all(p["bound"] in ("memory", "compute") and p["decode_tokens_per_s_max"] > 0 for p in d["points"])


def test_claim_article_and_custom(capsys):
    rc, out, _ = _run(capsys, "claim", "--article", "all", "--json")
    assert rc == 0 and [c["possible"] for c in json.loads(out)] == [False] * 6
    rc, out, _ = _run(capsys, "claim", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm",
                      "--claimed-tokens-per-s", "100")
    assert rc == 0 and "verdict: possible" in out


@pytest.mark.parametrize("argv", [
    ["fit", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100"],
    ["fit", "--model", "nope", "--gpu", "h100-sxm"],
    ["fit", "--model", str(CONFIGS / "bad-zero-heads.json"), "--gpu", "h100-sxm"],
    ["fit", "--model", "meta-llama/Llama-3.3-70B-Instruct", "--gpu", "h100-sxm", "--gpus", "3"],
    ["fit", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", "--dtype", "int3"],
    ["fit", "--gpu", "h100-sxm"],
    ["roofline", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", "--concurrency", "0"],
    ["claim"],
])
def test_bad_input_exits_2_with_one_line(capsys, argv):
    rc, out, err = _run(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1


def test_roofline_closed_loop_shape(capsys):
    rc, out, _ = _run(capsys, "roofline", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h200",
                      "--input-tokens", "2048", "--output-tokens", "128", "--concurrency", "1,32", "--json")
    d = json.loads(out)
    assert rc == 0 and [p["concurrency"] for p in d["points"]] == [1, 32]
    for p in d["points"]:  # the old keys stay, the closed-loop ones join them
        assert p["decode_tokens_per_s_est"] > 0 and p["bound"] in ("memory", "compute")
        assert p["output_tokens_per_s_est"] > 0 and p["tpot_ms_est"] > 0 and p["ttft_ms_est"] > 0
    assert d["points"][1]["output_tokens_per_s_est"] < d["points"][1]["decode_tokens_per_s_est"]  # prefill costs
    assert d["points"][1]["closed_loop_bound"] == "prefill"
    cl = d["closed_loop"]
    assert cl["max_num_batched_tokens"] == 8192 and cl["kv_capacity_tokens"] > 100_000
    assert set(cl["calibration"]) >= {"step_mbu", "step_overhead_ms", "step_mfu", "fitted_on"}
    rc, out, _ = _run(capsys, "roofline", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h200",
                      "--input-tokens", "2048", "--output-tokens", "128", "--concurrency", "32",
                      "--max-num-batched-tokens", "2048")
    assert rc == 0 and "batch budget 2048 tokens" in out


@pytest.mark.parametrize("extra", [
    ["--input-tokens", "0", "--output-tokens", "5"],
    ["--input-tokens", "512"],
    ["--input-tokens", "512", "--output-tokens", "5", "--max-num-batched-tokens", "1"],
    ["--input-tokens", "3000", "--output-tokens", "3000", "--max-model-len", "4096"],
    ["--input-tokens", "x", "--output-tokens", "5"],
])
def test_roofline_closed_loop_bad_input_exits_2(capsys, extra):
    rc, out, err = _run(capsys, "roofline", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h200", *extra)
    assert rc == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1


def test_roofline_closed_loop_refuses_a_model_that_does_not_fit(capsys):
    rc, _, err = _run(capsys, "roofline", "--model", "meta-llama/Llama-3.3-70B-Instruct", "--gpu", "h100-sxm",
                      "--input-tokens", "512", "--output-tokens", "256")
    assert rc == 2 and "vLLM would not start" in err
