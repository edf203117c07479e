"""benchmarks/multigpu_matrix.py (issue 14's 2-GPU runs as commands): each probe command is one the CLI accepts,
asks for the GPU group it means, and the predictions follow the DP/TP accounting."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.multigpu_matrix import main, matrix, predictions
from probes import cli


def test_probe_commands_parse_and_lock_the_group_they_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    groups = {}
    for name, argv in matrix(Path("OUT")):
        if argv[1:4] != ["-m", "probes", "run"]:
            assert argv[1] == "benchmarks/gpu_validate.py" and "--vllm-arg=--tensor-parallel-size" in argv
            continue
        ns = cli.build_parser().parse_args(argv[3:])
        req = cli._request(ns, cli._config(ns), None)
        groups[name] = (req.gpu_indices, req.visible_devices)
    assert groups == {"l8-1gpu": ((0,), "0"), "l8-tp2": ((0, 1), "0,1"), "l8-dp2": ((0, 1), "0,1")}


def test_predictions_follow_the_parallel_accounting() -> None:
    p = predictions()
    assert p["l8-dp2"]["kv_tokens_total"] == 2 * p["l8-1gpu"]["kv_tokens_per_replica"]
    assert p["l8-tp2"]["weights_gib"] == pytest.approx(p["l8-1gpu"]["weights_gib"] / 2, abs=0.01)
    assert p["l70-tp2-u0.85"]["kv_tokens_total"] < p["l70-tp2-default"]["kv_tokens_total"]


def test_the_default_is_a_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out-dir", str(tmp_path / "out")]) == 0
    assert "# l8-dp2" in capsys.readouterr().out and not (tmp_path / "out").exists()
