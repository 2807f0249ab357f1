#!/usr/bin/env bash
# The CUDA checks in one run, for a machine with a GPU (the lent device machine, or yours):
#   1. the `gpu` tests: mamba_ssm's Triton kernels against the PyTorch reference (outputs, state, gradients),
#      mamba_ssm's own Mamba2 loading our state_dict, a checkpoint saved on CPU running on the kernel path;
#   2. benchmarks/model.py on the GPU (base preset: forward b1/b8, forward + backward b4, peak GPU memory);
#   3. benchmarks/train.py on the GPU (the real training loop, bf16 autocast, tiny and base);
#   4. the whole test suite on a CUDA machine (tests must not assume there is no GPU).
# Wheels or sources the machine lacks can be put in .gpu/whl (installed to /tmp/site) and .gpu/site (on the path):
# on the lent machine that is pydantic, timescoring, edfio, mne (and its pooch, decorator) and mamba_ssm. The first
# Triton compilation of the Mamba kernels takes minutes; budget about 12 minutes for the whole script.
# Logs and JSON go to $OUT (default: gpu-out/).
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if compgen -G ".gpu/whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
fi
export PYTHONPATH="$PWD/src:/tmp/site:$PWD/.gpu/site:${PYTHONPATH:-}"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
  $PY -c "import mamba_ssm; print('mamba_ssm', mamba_ssm.__version__)" || echo "mamba_ssm: not importable"
  $PY -c "from ictal.models.mamba.mamba2 import mamba_backend; print('mamba path on cuda:', mamba_backend('cuda'))"
} 2>&1 | tee "$OUT/env.txt"
step() { local name=$1 limit=$2; shift 2; echo "=== $name"; timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | tail -25; }
step gpu_tests 200 $PY -m pytest -q -p no:cacheprovider -rs tests/test_mamba2.py tests/test_model_checkpoint_paths.py
step model_bench 240 $PY benchmarks/model.py --gpu-only --repeats 1 --json "$OUT/model_gpu.json"
step train_bench 240 $PY benchmarks/train.py --device cuda --json "$OUT/train_gpu.json"
step all_tests 240 $PY -m pytest -q -p no:cacheprovider -x -n 8 tests
