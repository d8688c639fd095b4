#!/usr/bin/env bash
# Sprites on one GPU, end to end in one run: build the data set from the LPC sheets,
# train the judge (or reuse one), train the paper network (configs/sprites.yaml) for a
# fixed time, evaluate it on the GPU (Table 1, later-work protocol, Figures 3-4) and leave
# the small outputs in OUT. Weights stay on the GPU machine; tables, figures and logs come back.
#
#   SHEETS=.device/lpc-sprites OUT=out MINUTES=6 bash scripts/sprites_gpu.sh
#
# SHEETS: the 25 LPC layers and split_seed423.json (licensed data: keep it in an
#         ignored folder, never in the repository).
# MINUTES: training time for the DSVAE (a new judge takes about a minute more).
# POSTERIOR: factorised (default) or full.   JUDGE: a judge folder to reuse.
# DATA: a Sprites folder already built (skips the build).   DSVAE: the command to run.
# EXTRA_SET: more config overrides, e.g. "train.max_steps=20" for a rehearsal.
set -euo pipefail
SHEETS=${SHEETS:-}
OUT=${OUT:?set OUT to the output folder}
MINUTES=${MINUTES:-6}
POSTERIOR=${POSTERIOR:-factorised}
WORK=${WORK:-$(mktemp -d)}
DSVAE=${DSVAE:-dsvae}
DATA=${DATA:-$WORK/sprites}
JUDGE=${JUDGE:-}
EXTRA_SET=${EXTRA_SET:-}
extra=()
for kv in $EXTRA_SET; do extra+=(--set "$kv"); done
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>/dev/null || true

start=$(date +%s)
if [ ! -f "$DATA/test/meta.json" ]; then
  : "${SHEETS:?set SHEETS to the folder of LPC sheets (or DATA to a built set)}"
  $DSVAE data sprites --sheets "$SHEETS" --out "$DATA" 2>&1 | tail -2 | tee "$OUT/data.log"
fi
if [ -z "$JUDGE" ]; then
  JUDGE=$WORK/judge
  $DSVAE judge sprites --data "$DATA" --out "$JUDGE" --epochs 2 2>&1 | tail -3 | tee "$OUT/judge.log"
fi
cp "$JUDGE/test_accuracy.json" "$OUT/judge_test_accuracy.json" 2>/dev/null || true
# a hard stop two minutes after the planned one; if training fails (a NaN, a kill), the
# newest checkpoint is exported and evaluated instead, and the log says so
train_status=0
timeout $(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 + 120 }') \
  $DSVAE train sprites --data "$DATA/train" --out "$WORK/run" \
  --set model.posterior="$POSTERIOR" --set train.max_time_minutes="$MINUTES" \
  --set train.max_epochs=200 --set train.batch_size=128 --set train.lr=0.0005 \
  --set train.progress_bar=false --set train.pictures_every_n_epochs=0 "${extra[@]}" \
  > "$OUT/train.log" 2>&1 || train_status=$?
tail -5 "$OUT/train.log"
if [ "$train_status" != 0 ]; then
  echo "training stopped with exit $train_status: evaluating the newest checkpoint" | tee -a "$OUT/train.log"
  $DSVAE export "$WORK/run" 2>&1 | tee -a "$OUT/train.log"
fi
for f in config.yaml metrics.csv summary.json; do [ ! -f "$WORK/run/$f" ] || cp "$WORK/run/$f" "$OUT/"; done
$DSVAE evaluate sprites "$WORK/run" --judge "$JUDGE" --data "$DATA" --out "$OUT/eval" \
  --device "${DEVICE:-cuda}" | tee "$OUT/eval.log"
echo "total wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/eval.log"
