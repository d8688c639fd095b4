#!/usr/bin/env bash
# Bouncing ball (Section 4.3) on a CPU, end to end: the data set of the paper
# (4,000 train / 1,000 test sequences, T = 30, 32x32), the stochastic model and
# the two deterministic baselines, each for every seed, then Figures 7-8 and the
# table behind them. Runs LANES trainings at a time with THREADS threads each
# (on 2 cores: 2 lanes of 1 thread). Safe to run again after a crash or a kill:
# finished runs are skipped, interrupted ones resume from their last checkpoint.
#
#   nohup bash scripts/bouncing_ball_cpu.sh > bouncing_ball.log 2>&1 &
#
# DATA: data folder (default data/ball), RUNS: run folders (default runs/ball),
# OUT: evaluation output (default eval/bouncing-ball), SEEDS: "0 1 2".
set -euo pipefail
DATA=${DATA:-data/ball}
RUNS=${RUNS:-runs/ball}
OUT=${OUT:-eval/bouncing-ball}
SEEDS=${SEEDS:-0 1 2}
LANES=${LANES:-2}
THREADS=${THREADS:-1}
DSVAE=${DSVAE:-dsvae}

start=$(date +%s)
[ -f "$DATA/train/meta.json" ] || $DSVAE data bouncing-ball --out "$DATA/train" --n 4000 --length 30 --seed 0
[ -f "$DATA/test/meta.json" ] || $DSVAE data bouncing-ball --out "$DATA/test" --n 1000 --length 30 --seed 1
mkdir -p "$RUNS"

train_one() {  # config seed
  local run="$RUNS/$1-s$2"
  if [ -f "$run/summary.json" ] && [ -f "$run/model/model.safetensors" ]; then
    echo "skip $run (finished)"; return
  fi
  local resume=()
  if [ -f "$run/checkpoints/last.ckpt" ]; then
    resume=(--resume)
  elif [ -d "$run" ]; then
    rm -rf "$run"  # killed before its first checkpoint: nothing to keep
  fi
  echo "train $run ${resume[*]:-}"
  OMP_NUM_THREADS=$THREADS $DSVAE train "$1" --data "$DATA/train" --out "$run" \
    --set train.seed="$2" --set train.progress_bar=false --set train.pictures_every_n_epochs=0 \
    "${resume[@]}" >> "$run.log" 2>&1 || { echo "FAILED $run (see $run.log)"; return 1; }
  tail -1 "$run.log"
}

jobs_list=()
for seed in $SEEDS; do
  for config in bouncing-ball bouncing-ball-lstm-f bouncing-ball-lstm-c; do
    jobs_list+=("$config $seed")
  done
done
running=0
for job in "${jobs_list[@]}"; do
  train_one $job &
  running=$((running + 1))
  if [ "$running" -ge "$LANES" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

runs=()
for job in "${jobs_list[@]}"; do set -- $job; runs+=("$RUNS/$1-s$2"); done
$DSVAE evaluate bouncing-ball "${runs[@]}" --data "$DATA/test" --out "$OUT"
echo "total wall time: $(( $(date +%s) - start )) s"
