#!/usr/bin/env bash
# One prepared GPU run (the device has torch and transformers, no registry): scoring and training
# throughput on a random-init model of Qwen2.5-0.5B's exact shape, bf16. Results go to $OUT (or ./gpu_out).
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PRM_LIB_CACHE=/tmp/prm_cache TQDM_DISABLE=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
run() { name=$1; shift; echo "== $name"; timeout "${LIMIT:-240}" python3 "$@" 2>"$OUT/$name.err" | tee "$OUT/$name.json"; tail -2 "$OUT/$name.err"; }
Q="--preset gpu-qwen2.5-0.5b --backbone qwen2.5-0.5b-random --n-layers 0 --device cuda"
LIMIT=120 run score benchmarks/score_throughput.py --backbone qwen2.5-0.5b-random --device cuda --n 512
LIMIT=120 run train_eager benchmarks/train_throughput.py $Q --batch-size 128 --steps 30 --seed-steps 40 --breakdown
LIMIT=200 run train_compile benchmarks/train_throughput.py $Q --batch-size 128 --steps 40 --seed-steps 5 --compile --max-len 128
