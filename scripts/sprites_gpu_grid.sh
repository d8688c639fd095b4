#!/usr/bin/env bash
# Sprites on one GPU in one call of a fixed budget: the CPU network's ablation grid, then
# the paper network with the best recipe for the time that is left.
#   1. the Sprites set built from the LPC sheets (on the CPU, about 15 s);
#   2. the judge (or reuse one);
#   3. dsvae ablate GRID (default grids/sprites-gpu.yaml): every variant trained for the
#      grid's budget and scored on the validation characters (ablation.md/.json in OUT);
#   4. the paper network (configs/sprites.yaml, scripts/sprites_gpu.sh) with RECIPE for
#      the time left, evaluated on the test characters, and scripts/time_to_result.py.
# Each stage writes into OUT as it goes, so a run cut short still leaves what it finished.
#
#   SHEETS=.device/lpc-sprites OUT=out BUDGET=540 bash scripts/sprites_gpu_grid.sh
#
# SHEETS: the LPC layers (licensed: keep them in an ignored folder). BUDGET: seconds for
# the whole script (default 540). EVAL_RESERVE: seconds kept for the paper network's
# evaluation (default 90). RECIPE: overrides for the paper network (default: full q, the
# recipe the CPU rounds chose; set it from the grid's ranking on validation, never from
# test numbers). LANES: variants trained at a time on the GPU (default 2). JUDGE: a judge
# folder to reuse. DEVICE (default cuda), DSVAE, PYTHON.
# A rehearsal on the CPU: DEVICE=cpu CHARACTERS=4 (a small data set), GRID=<a grid whose
# set: shrinks the network>, EXTRA_SET="train.max_steps=5 ..." for the paper network.
set -uo pipefail
SHEETS=${SHEETS:?set SHEETS to the folder of LPC sheets}
OUT=${OUT:?set OUT to the output folder}
BUDGET=${BUDGET:-540}
EVAL_RESERVE=${EVAL_RESERVE:-90}
GRID=${GRID:-grids/sprites-gpu.yaml}
LANES=${LANES:-2}
CHARACTERS=${CHARACTERS:-}
RECIPE=${RECIPE:-model.posterior=full}
EXTRA_SET=${EXTRA_SET:-}
export DSVAE=${DSVAE:-dsvae} PYTHON=${PYTHON:-python} DEVICE=${DEVICE:-cuda} PYTHONUNBUFFERED=1
WORK=${WORK:-$(mktemp -d)}
start=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - start) )); }
stamp() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$OUT/stages.log"; }
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>/dev/null || true

stamp "data"
$DSVAE data sprites --sheets "$SHEETS" --out "$WORK/sprites" ${CHARACTERS:+--characters "$CHARACTERS"} \
  > "$OUT/data.log" 2>&1 \
  || { stamp "data FAILED: see data.log"; exit 1; }
if [ -z "${JUDGE:-}" ]; then
  stamp "judge"
  JUDGE=$WORK/judge
  $DSVAE judge sprites --data "$WORK/sprites" --out "$JUDGE" --epochs 2 > "$OUT/judge.log" 2>&1 \
    || { stamp "judge FAILED: see judge.log"; exit 1; }
fi
stamp "grid $GRID"
$DSVAE ablate "$GRID" --data "$WORK/sprites" --judge "$JUDGE" --out "$WORK/grid" --lanes "$LANES" \
  > "$OUT/grid.log" 2>&1 \
  || stamp "grid FAILED or stopped: see grid.log"
for f in ablation.md ablation.json; do [ ! -f "$WORK/grid/$f" ] || cp "$WORK/grid/$f" "$OUT/"; done
minutes=$(awk -v s="$(left)" -v r="$EVAL_RESERVE" 'BEGIN { m = (s - r - 40) / 60; printf "%.2f", (m < 0.5 ? 0.5 : m) }')
stamp "paper network ($RECIPE): training for $minutes minutes"
OUT="$OUT/paper" DATA="$WORK/sprites" JUDGE="$JUDGE" WORK="$WORK" MINUTES="$minutes" \
  EXTRA_SET="$RECIPE $EXTRA_SET" bash scripts/sprites_gpu.sh > "$OUT/paper.log" 2>&1 \
  || stamp "paper network FAILED: see paper.log"
$PYTHON scripts/time_to_result.py "$OUT/paper" --step none > "$OUT/time_to_result.log" 2>&1 || true
stamp "done"
