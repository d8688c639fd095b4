#!/usr/bin/env bash
# Sprites on one GPU, end to end in one run: build the data set from the LPC sheets,
# train the judge, train the paper network (configs/sprites.yaml) for a fixed time,
# evaluate it (Table 1, later-work protocol, Figures 3-4) and leave the small outputs
# in OUT. Weights stay on the GPU machine; the tables, figures and logs come back.
#
#   SHEETS=.device/lpc-sprites OUT=out MINUTES=6 bash scripts/sprites_gpu.sh
#
# SHEETS: the 25 LPC layers and split_seed423.json (licensed data: keep it in an
#         ignored folder, never in the repository).
# MINUTES: training time for the DSVAE (the judge takes about a minute more).
# POSTERIOR: factorised (default) or full.
set -euo pipefail
SHEETS=${SHEETS:?set SHEETS to the folder of LPC sheets}
OUT=${OUT:?set OUT to the output folder}
MINUTES=${MINUTES:-6}
POSTERIOR=${POSTERIOR:-factorised}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>/dev/null || true

start=$(date +%s)
dsvae data sprites --sheets "$SHEETS" --out "$WORK/sprites" 2>&1 | tail -2 | tee "$OUT/data.log"
dsvae judge sprites --data "$WORK/sprites" --out "$WORK/judge" --epochs 4 2>&1 | tail -3 | tee "$OUT/judge.log"
cp "$WORK/judge/test_accuracy.json" "$OUT/judge_test_accuracy.json"
dsvae train sprites --data "$WORK/sprites/train" --out "$WORK/run" \
  --set model.posterior="$POSTERIOR" --set train.max_time_minutes="$MINUTES" \
  --set train.max_epochs=200 --set train.batch_size=128 --set train.lr=0.0005 \
  --set train.precision=bf16-mixed --set train.progress_bar=false --set train.pictures_every_n_epochs=0 \
  2>&1 | tail -3 | tee "$OUT/train.log"
cp "$WORK/run/config.yaml" "$WORK/run/metrics.csv" "$WORK/run/summary.json" "$OUT/"
dsvae evaluate sprites "$WORK/run" --judge "$WORK/judge" --data "$WORK/sprites" --out "$OUT/eval" \
  | tee "$OUT/eval.log"
echo "total wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/eval.log"
