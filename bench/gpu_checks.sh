#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one call (a lent machine's time is short): the `gpu`-marked kernel tests,
# then the kernel profile of docs/benchmarks/kernels.md (advantage, then loss, each in its own report folder so
# that a run cut short keeps what finished).
# Usage, from the repository root, with a python that has torch and triton: bash bench/gpu_checks.sh OUT_DIR
# (PY=... picks the interpreter; default python3).
set -uo pipefail
out=${1:?usage: bash bench/gpu_checks.sh OUT_DIR}
py=${PY:-python3}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$out/gpu.txt"
"$py" -c "import sys, torch, triton; print(sys.version.split()[0], torch.__version__, triton.__version__, \
torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).multi_processor_count, 'SMs')" | tee -a "$out/gpu.txt"
"$py" -m pytest -m gpu -q -p no:cacheprovider tests/tgrpo/test_kernels.py 2>&1 | tee "$out/pytest_gpu.log"
for kernel in advantage loss; do
    "$py" -m bench.cli profile --device cuda --kernel "$kernel" --out "$out/kernels-$kernel" 2>&1 \
        | tee "$out/profile_$kernel.log"
done
