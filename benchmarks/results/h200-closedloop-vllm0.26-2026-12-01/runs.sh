#!/bin/bash
# Closed-loop request shapes on the lent H200 (vLLM 0.26.0 GPU wheels, synthetic Llama-3.1-8B, prefix caching off).
# Usage (from the repo root on the device, vLLM importable by python3): bash runs.sh A|B
#   A: default --max-num-batched-tokens (8192): (I,O) = (2048,128) and (128,512) at c = 1,8,32,128
#   B: --max-num-batched-tokens 2048:            (I,O) = (2048,128) at c = 8,32,128 and (512,256) at c = 32,128
#   C: Qwen2.5-7B shape (../h200-kv-capacity-vllm0.26-2026-11-28/qwen7b-config.json), default batched tokens:
#      (I,O) = (1024,256) at c = 1,16,64 (held out: not used to fit the closed-loop model)
# Writes probe run JSONs and the server log into $OUT/closedloop-PHASE.tar.gz (re-packed after every step).
set -u
PHASE=${1:?A or B}
W=/tmp/closedloop-$PHASE; mkdir -p "$W"
M=/tmp/m8b
PORT=8011
pack() { tar czf "$OUT/closedloop-$PHASE.tar.gz" -C "$W" . ; }
SRC=meta-llama/Llama-3.1-8B-Instruct; NAME=llama-3.1-8b-bf16
[ "$PHASE" = C ] && { SRC=benchmarks/results/h200-kv-capacity-vllm0.26-2026-11-28/qwen7b-config.json; NAME=qwen2.5-7b-bf16; M=/tmp/q7b; }
python3 -c "from probes.target.synthetic import write_model_dir as w; w('$SRC', '$M')"
EXTRA=()
[ "$PHASE" = B ] && EXTRA=(--max-num-batched-tokens 2048)
T0=$(date +%s)
python3 -m vllm.entrypoints.cli.main serve "$M" --load-format dummy --max-model-len 4096 \
  --no-enable-prefix-caching --served-model-name $NAME --host 127.0.0.1 --port $PORT \
  "${EXTRA[@]}" > "$W/vllm-$PHASE.log" 2>&1 &
SPID=$!
until python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" 2>/dev/null; do
  kill -0 $SPID 2>/dev/null || { echo "vLLM died"; pack; exit 1; }
  sleep 2
done
echo "ready after $(( $(date +%s) - T0 )) s" | tee "$W/ready.txt"
nvidia-smi > "$W/nvidia-smi.txt" 2>&1
probe() {  # name input output concurrencies
  local t=$(date +%s)
  python3 -m probes run --endpoint http://127.0.0.1:$PORT --input-tokens "$2" --output-tokens "$3" \
    --concurrency "$4" --requests 8 --saturation-gain 0 --vocab-size 128000 --no-store \
    --out "$W/probe-$1.json" > "$W/probe-$1.txt" 2>&1
  echo "$1 rc=$? $(( $(date +%s) - t )) s"; tail -8 "$W/probe-$1.txt"; pack
}
if [ "$PHASE" = A ]; then
  probe i2048-o128 2048 128 1,8,32,128
  probe i128-o512 128 512 1,8,32,128
elif [ "$PHASE" = C ]; then
  probe qwen7b-i1024-o256 1024 256 1,16,64
else
  probe i2048-o128-mbt2048 2048 128 8,32,128
  probe i512-o256-mbt2048 512 256 32,128
fi
kill $SPID; wait $SPID; pack; echo done
