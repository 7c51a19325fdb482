#!/usr/bin/env bash
# The prepared GPU check (issue 14): run on a lent GPU machine (the `device` tool), no network,
# in under 8 minutes on one H200. Uses the machine's own python3 (torch, transformers, peft,
# tokenizers, pytest are there); tunesmith runs from src/ without installing.
#   bench/gpu_check.sh            # writes $OUT/gpu.txt, tests.txt, bench.txt (OUT default /tmp/gpu-check)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
  TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TUNESMITH_HOME=/tmp/tunesmith-home
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available())" \
  | tee -a "$OUT/gpu.txt"
# packed attention kernels (flex / flash-attn varlen) with gradients, chunked loss, checkpointing
# and --batch-tokens auto's measurement from the CUDA allocator
timeout 150 python3 -m pytest -q -p no:cacheprovider -o addopts="" --noconftest \
  tests/training/test_attention.py tests/training/test_loss.py \
  "tests/training/test_memory.py::test_on_cuda_the_measured_size_fits_its_budget" 2>&1 \
  | tee "$OUT/tests.txt"
# throughput and peak memory against HF Trainer: 1B and 8B (Llama-3 shapes, random weights)
timeout 400 python3 bench/gpu_bench.py --sizes 1b,8b --steps 10 --folder /tmp/gpu-bench 2>&1 \
  | tee "$OUT/bench.txt"
# QLoRA at 8B, where the machine has bitsandbytes (there is no network to get it)
if python3 -c "import bitsandbytes" 2>/dev/null; then
  timeout 150 python3 bench/gpu_bench.py --sizes 8b --methods qlora --steps 6 \
    --folder /tmp/gpu-bench 2>&1 | tee -a "$OUT/bench.txt"
else
  echo "bitsandbytes not installed: QLoRA not measured" | tee -a "$OUT/bench.txt"
fi
