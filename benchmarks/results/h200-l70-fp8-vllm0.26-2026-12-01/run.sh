#!/bin/bash
# Issue 14, the single-GPU half of item 1: Llama-3.3-70B shape on ONE H200 in fp8 (bf16 does not fit one GPU),
# our probe beside vllm bench serve on the same server, c = 1, 8, 32; then a second start at
# --gpu-memory-utilization 0.85 for the startup memory split only. Outputs packed into few files ($OUT).
set -u
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 \
       TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1
W=/tmp/l70; mkdir -p $W
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $OUT/nvidia-smi.txt 2>&1
mode=${1:-sweep}
if [ "$mode" = sweep ]; then
  timeout 560 python3 benchmarks/gpu_validate.py --synthetic meta-llama/Llama-3.3-70B-Instruct --label l70-fp8-1gpu \
    --concurrency 1,8,32 --input-tokens 512 --output-tokens 256 --rounds 2 --min-requests 8 --warmup 2 \
    --vllm-python python3 --out-dir $W --startup-timeout 330 \
    --vllm-arg=--quantization --vllm-arg=fp8 --vllm-arg=--max-model-len --vllm-arg=4096 > $W/gpu_validate.stdout 2>&1
  echo "gpu_validate rc=$?" >> $W/gpu_validate.stdout
else
  # startup only at 0.85: serve until /health, then stop (the startup log holds the memory split)
  mkdir -p $W/u085
  python3 - <<'PY' > $W/u085/start.stdout 2>&1
import sys, time, pathlib
sys.path.insert(0, ".")
from probes.target.synthetic import write_model_dir
from probes.target.server import VllmServer
out = pathlib.Path("/tmp/l70/u085")
md = write_model_dir("meta-llama/Llama-3.3-70B-Instruct", out / "model")
log = out / "vllm-l70-fp8-u085.log"
t0 = time.perf_counter()
args = ["--quantization", "fp8", "--max-model-len", "4096", "--gpu-memory-utilization", "0.85", "--load-format", "dummy"]
with VllmServer(model=str(md), serve_args=args, vllm_python="python3", log_path=str(log), startup_timeout_s=330) as srv:
    print("healthy after", round(time.perf_counter() - t0, 1), "s at", srv.base_url)
PY
  echo "rc=$?" >> $W/u085/start.stdout
fi
find $W -maxdepth 3 -type d -name 'model*' -prune -exec rm -rf {} + 2>/dev/null
rm -f $W/*.sqlite $W/*/*.sqlite
tar czf $OUT/l70-$mode.tgz -C $W .
ls -la $W | head -30
