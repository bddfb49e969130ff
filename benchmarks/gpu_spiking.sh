#!/usr/bin/env bash
# Spiking benchmark on a GPU machine: the 784-500 RBM of benchmarks/spiking.py on cuda_standalone,
# next to cpp_standalone and the numpy reference on the same machine.
#
# Usage (from the repository root):  bash benchmarks/gpu_spiking.sh [SECONDS] [WHEELHOUSE]
#   SECONDS     simulated seconds per timed run (default 2)
#   WHEELHOUSE  folder of wheels for an offline install (brian2cuda==1.0b1 and its pins,
#               nvidia-curand); default: wheels/ if present, else pip's index.
# Prints the `name: value` lines of benchmarks/spiking.py, including realtime_factor_cuda.
# Output and the generated CUDA project go to ${OUT:-/tmp/vpf-gpu}.
set -euo pipefail
SECONDS_SIM=${1:-2}
WHEELS=${2:-wheels}
OUTDIR=${OUT:-/tmp/vpf-gpu}
mkdir -p "$OUTDIR"
export VPF_SPIKING_CACHE="$OUTDIR/cache"

PY=${PYTHON:-python3.12}
if [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    "$PY" -m venv "$OUTDIR/venv"
    PY="$OUTDIR/venv/bin/python"
    if [ -d "$WHEELS" ]; then
        "$PY" -m pip install -q --no-index --find-links "$WHEELS" -e '.[cuda]'
    else
        "$PY" -m pip install -q -e '.[cuda]'
    fi
fi

echo "nvcc: $(command -v nvcc || echo missing)"; nvcc --version | tail -1 || true
nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader || true

# cuda_standalone on the GPU (the makefile -std and cuRAND fixes are applied by vpf_spiking.spiking.devices)
"$PY" benchmarks/spiking.py --seconds "$SECONDS_SIM" --devices cuda_standalone,cpp_standalone,numpy \
    2>&1 | tee "$OUTDIR/gpu_spiking.txt"
