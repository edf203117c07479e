#!/bin/bash
# usage: run.sh MODEL... ; writes $OUT/<model>/ (run JSON, vLLM log) per model
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1
for m in "$@"; do
  echo "=== $m $(date +%T)"
  timeout 280 python3 benchmarks/gpu_validate.py --synthetic .device_carry/arch/$m.json --label $m \
    --concurrency 1,32 --input-tokens 512 --output-tokens 128 --rounds 2 --min-requests 8 --warmup 2 --skip-bench \
    --out-dir $OUT/$m --vllm-arg=--max-model-len --vllm-arg=4096 > $OUT/$m.stdout 2>&1
  echo "rc=$? $(date +%T)"; tail -5 $OUT/$m.stdout
  grep -h -i "KV cache\|Model loading took\|memory profiling\|Available KV\|Maximum concurrency\|Error" $OUT/$m/*.log 2>/dev/null | head -12
  nvidia-smi --query-gpu=memory.used --format=csv,noheader
done
