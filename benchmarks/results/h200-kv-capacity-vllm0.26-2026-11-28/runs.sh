#!/usr/bin/env bash
# Measure vLLM's startup memory accounting for a few settings (run on the lent H200: 150,109,880,320 B total). Model dirs: *-config.json + a generated tokenizer. Lines go to $OUT.
set -u
bash /tmp/stage/install_on_gpu.sh > $OUT/install.log 2>&1 || { tail $OUT/install.log; exit 1; }
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH VLLM_USE_FLASHINFER_SAMPLER=0 \
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 VLLM_LOGGING_LEVEL=DEBUG PYTHONUNBUFFERED=1
python3 -c "import torch; f,t=torch.cuda.mem_get_info(); print('mem_get_info total',t,'free',f)" | tee $OUT/summary.txt
run() { # name model args...
  local name=$1 model=$2; shift 2
  local t0=$(date +%s)
  setsid python3 -m vllm.entrypoints.cli.main serve $model --load-format dummy --port 8011 "$@" > $OUT/$name.log 2>&1 &
  local pid=$!
  for i in $(seq 1 110); do
    sleep 2
    if grep -q -E "Maximum concurrency|Application startup complete|EngineCore failed|Engine core initialization failed" $OUT/$name.log; then sleep 3; break; fi
    kill -0 $pid 2>/dev/null || break
  done
  kill -TERM -- -$pid 2>/dev/null; sleep 5; kill -KILL -- -$pid 2>/dev/null; wait $pid 2>/dev/null
  echo "== $name $* ($(( $(date +%s)-t0 )) s)" >> $OUT/summary.txt
  grep -E "Model loading took|Available KV cache memory|GPU KV cache size|Maximum concurrency|Memory profiling takes|CUDAGraph|cudagraph memory|Free memory on device|Initial free memory|requested memory|max_num_batched_tokens|Graph capturing finished|non-torch|OutOfMemory|ValueError" $OUT/$name.log | cut -c1-600 >> $OUT/summary.txt
  sleep 3
}
run l8_u90 .cap_stage/llama8b --max-model-len 4096
run l8_u60_16k_fp8kv .cap_stage/llama8b --max-model-len 16384 --gpu-memory-utilization 0.6 --kv-cache-dtype fp8
run q7_u90_8k .cap_stage/qwen7b --max-model-len 8192
run q7_u80_eager .cap_stage/qwen7b --max-model-len 4096 --gpu-memory-utilization 0.8 --enforce-eager
cat $OUT/summary.txt
