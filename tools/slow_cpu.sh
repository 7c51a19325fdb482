#!/usr/bin/env bash
# Run a command as on the slow kind of CI machine (AVX2 only, no AVX512-BF16): torch's vector
# kernels, oneDNN and MKL limited to AVX2, and tunesmith's bf16 autocast off. An estimate of
# that machine, not the machine: compare a figure with one measured there before quoting it.
#   tools/slow_cpu.sh make test
export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
export TUNESMITH_CPU_BF16=0
exec "$@"
