#!/usr/bin/env bash
# Spiking benchmark on a GPU machine: the 784-500 RBM of benchmarks/spiking.py on cuda_standalone,
# next to cpp_standalone and the numpy reference on the same machine.
#
# Usage (from the repository root):  bash benchmarks/gpu_spiking.sh [SECONDS] [WHEELHOUSE]
#   SECONDS     simulated seconds per timed run (default 2)
#   WHEELHOUSE  folder of wheels for an offline install (brian2cuda==1.0b1 and its pins,
#               nvidia-curand); default: wheels/ if present, else pip's index.
# Prints the `name: value` lines of benchmarks/spiking.py, including realtime_factor_cuda; then
# times the STDP protocol (benchmarks/stdp_protocol.py, cuda_ lines) and a short spiking DBM
# training (the recipe protocols/spiking-dbm-mnist.toml on 500 images: spiking_dbm_cuda_s) on
# cuda_standalone, and runs the tests marked for cuda_standalone (tests/conftest.py).
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

# the STDP protocol on the GPU
"$PY" benchmarks/stdp_protocol.py --device cuda_standalone --skip-runtime 2>&1 | tee -a "$OUTDIR/gpu_spiking.txt"

# the spiking DBM recipe, 500 presentations, on the GPU
t0=$(date +%s.%N)
"$PY" -m vpf_spiking.cli run protocols/spiking-dbm-mnist.toml --set data.n_train=500 \
    --set 'spiking.device="cuda_standalone"' --out "$OUTDIR/spiking-dbm" --overwrite > "$OUTDIR/spiking-dbm.log" 2>&1
t1=$(date +%s.%N)
echo "spiking_dbm_cuda_presentations: 500" | tee -a "$OUTDIR/gpu_spiking.txt"
echo "spiking_dbm_cuda_s: $(echo "$t1 - $t0" | bc)" | tee -a "$OUTDIR/gpu_spiking.txt"

# the exactness tests marked for cuda_standalone
"$PY" -m pytest -q -k cuda_standalone tests/test_simulate.py tests/test_spiking_training.py 2>&1 | tail -3 \
    | tee -a "$OUTDIR/gpu_spiking.txt"
