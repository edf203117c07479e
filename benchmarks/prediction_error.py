"""Prediction error of the closed-loop roofline against every measured vLLM run in ``benchmarks/results/``.

    python benchmarks/prediction_error.py                  # table + MAE, writes results/prediction-error-*.{md,json}
    python benchmarks/prediction_error.py --fit            # refit the three constants on the "fit" rows first
    python benchmarks/prediction_error.py --fit --fit-gpu h100-sxm --no-write   # fit on one GPU, test the other
    python benchmarks/prediction_error.py --calibration    # leave-one-run-out: results/calibration-*.{md,json}

Each run file is named in ``RUNS`` with what the file itself does not say (the catalog model or config, the
GPU, weight/KV precision, ``--max-num-batched-tokens``, the KV room vLLM logged at startup) and its role:
``fit`` rows calibrate ``calculators.closedloop``'s constants, ``holdout`` rows only test them, ``excluded``
rows are listed with the reason. The fit is :func:`calculators.calibration.fit_calibration`, the same code the
Capacity page's "Calibrate from a measured run" uses. ``--calibration`` calibrates on each run alone and
predicts every other run (tok/s, median TPOT and median TTFT per concurrency). Per point: measured output tok/s and median TPOT (our probe) against
:func:`calculators.closedloop.closed_loop_point`, and against the old decode-only roofline
(:func:`calculators.roofline.decode_point` at context I + O/2, ``DEFAULT_MBU``) for comparison.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calculators.calibration import (  # noqa: E402
    TIE_PCT,
    MeasuredPoint,
    PointError,
    fit_calibration,
    mae_pct,
    points_from_run,
    prediction_errors,
)
from calculators.catalog import gpu  # noqa: E402
from calculators.closedloop import ClosedLoopInput, closed_loop_point  # noqa: E402
from calculators.modelspec import load_model  # noqa: E402
from calculators.roofline import RooflineInput, decode_point  # noqa: E402

__all__ = ["RUNS", "Run", "load_points", "measured_points", "predict", "fit_constants", "leave_one_run_out", "main"]

RESULTS = ROOT / "benchmarks" / "results"
QWEN7B = "benchmarks/results/h200-kv-capacity-vllm0.26-2026-11-28/qwen7b-config.json"
L8, L70 = "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct"


@dataclass(frozen=True)
class Run:
    path: str  # under benchmarks/results
    model: str  # catalog id or config.json path (relative to the repo)
    gpu: str
    weight_dtype: str
    max_num_batched_tokens: int | None  # None = vLLM's default (8192 on these GPUs: the server logs say so)
    kv_tokens: int  # "GPU KV cache size" in the server's startup log
    role: str  # fit | holdout | excluded
    note: str = ""


RUNS = (
    Run("h100-vllm0.26-2026-11-28/probe-llama-3.1-8b-bf16.json", L8, "h100-sxm", "bf16", None, 462_944, "fit"),
    Run("h100-vllm0.26-2026-11-28/probe-llama-3.3-70b-fp8.json", L70, "h100-sxm", "fp8", None, 8_576, "fit"),
    Run("h200-vllm0.26-2026-12-01/probe-llama-3.1-8b-bf16.json", L8, "h200", "bf16", None, 919_824, "fit"),
    Run("h200-probe-trust-vllm0.26-2026-12-01/endpoint-token-ids.json.gz", L8, "h200", "bf16", None, 919_824,
        "holdout", "prefix caching on, unique prompts"),
    Run("h200-probe-trust-vllm0.26-2026-12-01/endpoint-auto.json.gz", L8, "h200", "bf16", None, 919_824,
        "holdout", "prefix caching on; text prompts (--api auto)"),
    Run("h200-closedloop-vllm0.26-2026-12-01/probe-i2048-o128.json.gz", L8, "h200", "bf16", None, 919_824,
        "holdout"),
    Run("h200-closedloop-vllm0.26-2026-12-01/probe-i128-o512.json.gz", L8, "h200", "bf16", None, 919_824,
        "holdout"),
    Run("h200-closedloop-vllm0.26-2026-12-01/probe-i2048-o128-mbt2048.json.gz", L8, "h200", "bf16", 2048, 920_592,
        "holdout"),
    Run("h200-closedloop-vllm0.26-2026-12-01/probe-i512-o256-mbt2048.json.gz", L8, "h200", "bf16", 2048, 920_592,
        "holdout"),
    Run("h200-closedloop-vllm0.26-2026-12-01/probe-qwen7b-i1024-o256.json.gz", QWEN7B, "h200", "bf16", None,
        2_115_440, "holdout", "Qwen2.5-7B shape"),
    *(Run(f"h200-probe-trust-vllm0.26-2026-12-01/ours-{w}-r{r}.json.gz", L8, "h200", "bf16", None, 919_824,
          "excluded", "1,536-token shared prefix served from the prefix cache (not modelled)")
      for w in ("cold", "warm") for r in (0, 1)),
)
EXCLUDED_ELSEWHERE = (
    "h100x2-tp2-vllm0.26-2026-11-27: startup log only, no run file (its c=1 numbers live in ../shared/vllm/README.md)",
    "h200-probe-trust-vllm0.26-2026-12-01/bench-prefix-r*.json: vllm bench serve of the shared-prefix runs",
    "bench-*.json (vllm bench serve of the same points): the same server and workload as our probe's run file",
)


def _read(path: Path) -> dict:
    with (gzip.open(path, "rt") if path.suffix == ".gz" else path.open()) as f:
        return json.load(f)


def load_points(run: Run) -> list[dict]:
    """One row per measured point of ``run``: shape, concurrency, measured tok/s, median TPOT and TTFT."""
    data = _read(RESULTS / run.path)
    wl = data["workload"]
    rows = []
    for p in data["points"]:
        if not p.get("completed"):
            continue
        rows.append({"run": run.path, "gpu": run.gpu, "model": Path(run.model).stem if run.model.endswith(".json")
                     else run.model.split("/")[-1], "dtype": run.weight_dtype, "input_tokens": wl["input_tokens"],
                     "output_tokens": wl["output_tokens"], "max_num_batched_tokens": run.max_num_batched_tokens or 8192,
                     "concurrency": p["concurrency"], "role": run.role, "note": run.note,
                     "measured_tokens_per_s": p["output_tokens_per_s"],
                     "measured_tpot_ms": (p.get("tpot_ms") or {}).get("median"),
                     "measured_ttft_ms": (p.get("ttft_ms") or {}).get("median")})
    return rows


def _input(run: Run, row: dict, consts: dict) -> ClosedLoopInput:
    return ClosedLoopInput(load_model(str(ROOT / run.model) if run.model.endswith(".json") else run.model),
                           gpu(run.gpu), 1, run.weight_dtype, "auto", row["input_tokens"], row["output_tokens"],
                           run.max_num_batched_tokens, None, run.kv_tokens, **consts)


def predict(run: Run, row: dict, consts: dict | None = None) -> dict:
    """``row`` plus the closed-loop estimate, the old decode-only estimate and the errors (in %)."""
    inp = _input(run, row, consts or {})
    p = closed_loop_point(inp, row["concurrency"])
    old = decode_point(RooflineInput(inp.arch, inp.gpu, 1, inp.weight_dtype, "auto",
                                     row["input_tokens"] + row["output_tokens"] // 2), row["concurrency"])
    out = dict(row, est_tokens_per_s=p.output_tokens_per_s_est, est_tpot_ms=p.tpot_ms_est,
               est_ttft_ms=p.ttft_ms_est, bound=p.bound, running=p.running,
               old_est_tokens_per_s=old.decode_tokens_per_s_est, old_est_tpot_ms=1e3 / old.per_user_tokens_per_s_est)
    m_tps, m_tpot = row["measured_tokens_per_s"], row["measured_tpot_ms"]
    out["err_tokens_per_s_pct"] = 100 * (p.output_tokens_per_s_est / m_tps - 1)
    out["err_tpot_pct"] = 100 * (p.tpot_ms_est / m_tpot - 1) if m_tpot else None
    out["old_err_tokens_per_s_pct"] = 100 * (old.decode_tokens_per_s_est / m_tps - 1)
    out["old_err_tpot_pct"] = 100 * (out["old_est_tpot_ms"] / m_tpot - 1) if m_tpot else None
    return out


def _mae(rows: list[dict], key: str) -> float:
    vals = [abs(r[key]) for r in rows if r.get(key) is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def _all_rows(consts: dict | None, roles: tuple[str, ...]) -> list[dict]:
    rows = []
    for run in RUNS:
        if run.role in roles:
            rows += [predict(run, r, consts) for r in load_points(run)]
    return rows


def measured_points(run: Run) -> list[MeasuredPoint]:
    """``run``'s completed points as :class:`calculators.calibration.MeasuredPoint` (what the fit takes)."""
    base = _input(run, {"input_tokens": 1, "output_tokens": 1}, {})
    return points_from_run(_read(RESULTS / run.path), run.path, base)


def fit_constants(gpu_id: str | None = None) -> tuple[dict, float]:
    """:func:`calculators.calibration.fit_calibration` on the ``fit`` rows (of one GPU when ``gpu_id`` is given):
    the constants and the mean of the tok/s and TPOT MAE (%) there. The product's calibration is the same code."""
    pts = [p for run in RUNS if run.role == "fit" and gpu_id in (None, run.gpu) for p in measured_points(run)]
    cal = fit_calibration(pts, tie_pct=0.0)  # the plain best: the reference is what this fit produces
    return cal.constants(), (cal.mae_tokens_per_s_pct + cal.mae_tpot_pct) / 2


def _maes(errors: list[PointError]) -> dict:
    return {"points": len(errors), "mae_tokens_per_s_pct": mae_pct(errors, "tokens_per_s"),
            "mae_tpot_pct": mae_pct(errors, "tpot"), "mae_ttft_pct": mae_pct(errors, "ttft")}


def leave_one_run_out(tie_pct: float, roles: tuple[str, ...] = ("fit", "holdout")) -> dict:
    """Calibrate on each run alone (``fit_calibration`` on its points), predict every other run's points.

    Returns ``calibrations`` (per run: constants, what was fitted, MAE on its own points and on the others),
    ``by_concurrency`` and ``by_target`` (the pooled out-of-run predictions grouped by the measured point's
    concurrency, by whether the predicted run has the calibration's GPU and model, and by the predicted run's
    role: only ``holdout`` targets are out of sample when ``tie_pct`` > 0, since the tie rule leans on the shipped
    constants, fitted on the ``fit`` runs), ``pooled`` (one calibration on every run, in-sample) and
    ``predictions`` (one row per calibration run x predicted point)."""
    runs = [r for r in RUNS if r.role in roles]
    role = {r.path: r.role for r in runs}
    points = {r.path: measured_points(r) for r in runs}
    calibrations, predictions = [], []
    for run in runs:
        cal = fit_calibration(points[run.path], tie_pct=tie_pct)
        others = [p for r in runs if r.path != run.path for p in points[r.path]]
        errs = prediction_errors(others, cal.constants())
        calibrations.append({"run": run.path, "gpu": run.gpu, "model": cal.models[0], **cal.constants(),
                             "fitted": list(cal.fitted), "note": cal.note,
                             "own": _maes(list(cal.errors)), "others": _maes(list(errs))})
        for e in errs:
            same = e.gpu in cal.gpus and e.model in cal.models
            predictions.append({"calibrated_on": run.path, "target_role": role[e.run_id],
                                "target": "same GPU and model" if same else
                                "other GPU" if e.gpu not in cal.gpus else "other model, same GPU", **vars(e)})

    def group(key) -> list[dict]:
        keys = sorted({key(p) for p in predictions}, key=lambda k: (isinstance(k, str), k))
        return [{"group": k, **_maes([PointError(**{f: p[f] for f in PointError.__dataclass_fields__})
                                      for p in predictions if key(p) == k])} for k in keys]

    pooled = fit_calibration([p for r in runs for p in points[r.path]], tie_pct=tie_pct)
    return {"tie_pct": tie_pct, "calibrations": calibrations, "by_concurrency": group(lambda p: p["concurrency"]),
            "by_target": group(lambda p: p["target"]),
            "by_target_role": group(lambda p: f"{p['target_role']} runs"),
            "overall": _maes([PointError(**{f: p[f] for f in PointError.__dataclass_fields__}) for p in predictions]),
            "pooled": {**pooled.constants(), "fitted_on": list(pooled.fitted_on), **_maes(list(pooled.errors)),
                       "by_concurrency": [{"group": c, **_maes([e for e in pooled.errors if e.concurrency == c])}
                                          for c in sorted({e.concurrency for e in pooled.errors})]},
            "predictions": predictions}


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}%"


def calibration_report(r: dict) -> str:
    cal_lines = ["| calibrated on | GPU | model | MBU | overhead ms | MFU | own points | own MAE tok/s | TPOT | TTFT "
                 "| other points | others' MAE tok/s | TPOT | TTFT |", "|" + "---|" * 14]
    for c in r["calibrations"]:
        o, x = c["own"], c["others"]
        cal_lines.append(f"| {c['run']} | {c['gpu']} | {c['model']} | {c['step_mbu']:.2f} | {c['step_overhead_ms']:.2f} "
                         f"| {c['step_mfu']:.2f} | {o['points']} | {_pct(o['mae_tokens_per_s_pct'])} "
                         f"| {_pct(o['mae_tpot_pct'])} | {_pct(o['mae_ttft_pct'])} | {x['points']} "
                         f"| {_pct(x['mae_tokens_per_s_pct'])} | {_pct(x['mae_tpot_pct'])} | {_pct(x['mae_ttft_pct'])} |")

    def grouped(title: str, rows: list[dict]) -> str:
        lines = [f"| {title} | predictions | MAE output tok/s | MAE median TPOT | MAE median TTFT |", "|---|---|---|---|---|"]
        lines += [f"| {g['group']} | {g['points']} | {_pct(g['mae_tokens_per_s_pct'])} | {_pct(g['mae_tpot_pct'])} "
                  f"| {_pct(g['mae_ttft_pct'])} |" for g in rows]
        return "\n".join(lines)

    p = r["pooled"]
    return "\n\n".join([
        f"Leave one run out, tie_pct = {r['tie_pct']:g}: calibrated on each run alone, predicting every other run",
        "\n".join(cal_lines),
        grouped("concurrency", r["by_concurrency"]),
        grouped("target", r["by_target"] + r["by_target_role"] + [{"group": "all", **r["overall"]}]),
        f"Pooled (one calibration on all {p['points']} points of {len(p['fitted_on'])} runs, in-sample): "
        f"MBU {p['step_mbu']:.2f}, overhead {p['step_overhead_ms']:.2f} ms, MFU {p['step_mfu']:.2f}",
        grouped("concurrency (pooled)", p["by_concurrency"] + [{"group": "all", **p}]),
    ])


def _fmt(v: float | None, nd: int = 1) -> str:
    return "—" if v is None else f"{v:,.{nd}f}"


def table(rows: list[dict]) -> str:
    head = ("| GPU | model | dtype | in / out | batch tokens | c | role | tok/s measured | est | err | old est | old err "
            "| TPOT ms measured | est | err | old err | TTFT ms measured | est | bound |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['gpu']} | {r['model']} | {r['dtype']} | {r['input_tokens']} / {r['output_tokens']} "
            f"| {r['max_num_batched_tokens']} | {r['concurrency']} | {r['role']} | {_fmt(r['measured_tokens_per_s'])} "
            f"| {_fmt(r['est_tokens_per_s'])} | {r['err_tokens_per_s_pct']:+.1f}% | {_fmt(r['old_est_tokens_per_s'])} "
            f"| {r['old_err_tokens_per_s_pct']:+.1f}% | {_fmt(r['measured_tpot_ms'], 2)} | {_fmt(r['est_tpot_ms'], 2)} "
            f"| {r['err_tpot_pct']:+.1f}% | {r['old_err_tpot_pct']:+.1f}% | {_fmt(r['measured_ttft_ms'])} "
            f"| {_fmt(r['est_ttft_ms'])} | {r['bound']} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> list[dict]:
    groups = [("all", rows), ("fit", [r for r in rows if r["role"] == "fit"]),
              ("holdout", [r for r in rows if r["role"] == "holdout"])]
    groups += [(f"gpu {g}", [r for r in rows if r["gpu"] == g]) for g in sorted({r["gpu"] for r in rows})]
    return [{"set": name, "points": len(rs), "mae_tokens_per_s_pct": _mae(rs, "err_tokens_per_s_pct"),
             "mae_tpot_pct": _mae(rs, "err_tpot_pct"), "old_mae_tokens_per_s_pct": _mae(rs, "old_err_tokens_per_s_pct"),
             "old_mae_tpot_pct": _mae(rs, "old_err_tpot_pct")} for name, rs in groups if rs]


def summary_table(s: list[dict]) -> str:
    lines = ["| set | points | MAE output tok/s | MAE median TPOT | old roofline: tok/s | old: TPOT |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {g['set']} | {g['points']} | {g['mae_tokens_per_s_pct']:.1f}% | {g['mae_tpot_pct']:.1f}% "
              f"| {g['old_mae_tokens_per_s_pct']:.1f}% | {g['old_mae_tpot_pct']:.1f}% |" for g in s]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit", action="store_true", help="refit the constants on the fit rows and use them")
    ap.add_argument("--fit-gpu", default=None, help="with --fit: fit on this GPU's fit rows only (e.g. h100-sxm)")
    ap.add_argument("--out", default=str(RESULTS / "prediction-error-2026-12-01"),
                    help="write OUT.md and OUT.json (default: benchmarks/results/prediction-error-2026-12-01)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--calibration", action="store_true",
                    help="leave one run out: calibrate on each run, predict the others (writes OUT = "
                         "benchmarks/results/calibration-2026-12-01 unless --out)")
    ns = ap.parse_args(argv)
    if ns.calibration:
        report = {"no_prior": leave_one_run_out(0.0), "default": leave_one_run_out(TIE_PCT)}
        text = "\n\n".join(calibration_report(r) for r in report.values())
        print(text)
        if not ns.no_write:
            out = Path(ns.out if ns.out != ap.get_default("out") else RESULTS / "calibration-2026-12-01")
            out.with_suffix(".md").write_text(text + "\n")
            out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
        return 0
    consts: dict = {}
    if ns.fit:
        consts, score = fit_constants(ns.fit_gpu)
        print(f"fitted on the fit rows{' of ' + ns.fit_gpu if ns.fit_gpu else ''}: {consts} "
              f"(mean of the two MAEs {score:.2f}%)")
    rows = _all_rows(consts, ("fit", "holdout"))
    s = summary(rows)
    used = consts or {k: getattr(ClosedLoopInput, k) for k in ("step_mbu", "step_overhead_ms", "step_mfu")}
    excluded = [f"{r.path}: {r.note}" for r in RUNS if r.role == "excluded"] + list(EXCLUDED_ELSEWHERE)
    text = "\n\n".join([f"constants: {used}", table(rows), summary_table(s),
                        "excluded:\n" + "\n".join("- " + e for e in excluded)])
    print(text)
    if not ns.no_write:
        out = Path(ns.out)
        out.with_suffix(".md").write_text(text + "\n")
        out.with_suffix(".json").write_text(json.dumps({"constants": used, "rows": rows, "summary": s,
                                                        "excluded": excluded}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
