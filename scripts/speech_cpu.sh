#!/usr/bin/env bash
# Speech (Section 4.2) on a CPU, end to end: the FSDD + Allison data set, the four
# Table 2 runs (f/z of 16 and 64 dimensions, factorised and full q), Table 2 on both
# conditions, the conversion measurements, and one conversion to listen to.
# Runs LANES trainings at a time with THREADS threads each (on 2 cores: 2 lanes of 1
# thread). Safe to run again after a crash or a kill: finished runs are skipped,
# interrupted ones resume from their last checkpoint.
#
#   nohup bash scripts/speech_cpu.sh > speech.log 2>&1 &
#
# FSDD, ALLISON: the source folders (default ../shared/data/fsdd and ../shared/data/allison);
# DATA (default data/speech), RUNS (default runs/speech), OUT (default eval/speech); SEED;
# DYNAMIC_RANGE: build the data with --dynamic-range DB (default: absolute levels, as the
# paper); give it its own DATA, RUNS and OUT;
# EXTRA_SET: more config overrides for every run, e.g. "train.max_steps=20" for a smoke test.
# Everything written is derived from CC BY-SA audio: keep it out of the repository.
set -euo pipefail
FSDD=${FSDD:-../shared/data/fsdd}
ALLISON=${ALLISON:-../shared/data/allison}
DATA=${DATA:-data/speech}
RUNS=${RUNS:-runs/speech}
OUT=${OUT:-eval/speech}
SEED=${SEED:-0}
LANES=${LANES:-2}
THREADS=${THREADS:-1}
DSVAE=${DSVAE:-dsvae}
EXTRA_SET=${EXTRA_SET:-}
CONFIGS=${CONFIGS:-speech-f16-factorised speech-f64-factorised speech-f16-full speech-f64-full}
DYNAMIC_RANGE=${DYNAMIC_RANGE:-}
data_args=()
[ -z "$DYNAMIC_RANGE" ] || data_args=(--dynamic-range "$DYNAMIC_RANGE")

start=$(date +%s)
[ -f "$DATA/train/meta.json" ] || $DSVAE data speech --fsdd "$FSDD" --allison "$ALLISON" \
  --out "$DATA" --seed "$SEED" "${data_args[@]}"
mkdir -p "$RUNS"

train_one() {  # config
  local run="$RUNS/$1-s$SEED"
  if [ -f "$run/summary.json" ] && [ -f "$run/model/model.safetensors" ]; then
    echo "skip $run (finished)"; return
  fi
  local resume=() extra=()
  for kv in $EXTRA_SET; do extra+=(--set "$kv"); done
  if [ -f "$run/checkpoints/last.ckpt" ]; then
    resume=(--resume)
  elif [ -d "$run" ]; then
    rm -rf "$run"  # killed before its first checkpoint: nothing to keep
  fi
  echo "train $run ${resume[*]:-}"
  OMP_NUM_THREADS=$THREADS $DSVAE train "$1" --data "$DATA/train" --out "$run" \
    --set train.seed="$SEED" --set train.progress_bar=false \
    "${extra[@]}" "${resume[@]}" >> "$run.log" 2>&1 || { echo "FAILED $run (see $run.log)"; return 1; }
  tail -1 "$run.log"
}

running=0
for config in $CONFIGS; do
  train_one "$config" &
  running=$((running + 1))
  if [ "$running" -ge "$LANES" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

runs=()
for config in $CONFIGS; do runs+=("$RUNS/$config-s$SEED"); done
$DSVAE evaluate speech "${runs[@]}" --data "$DATA" --out "$OUT"
for config in $CONFIGS; do
  $DSVAE evaluate conversion "$RUNS/$config-s$SEED" --data "$DATA" --fsdd "$FSDD" \
    --allison "$ALLISON" --out "$OUT/conversion-$config" --seed "$SEED"
done
first=${CONFIGS%% *}
$DSVAE convert "$RUNS/$first-s$SEED" --data "$DATA" --source "$FSDD/recordings/3_george_0.wav" \
  --target "$ALLISON/digits/7.wav" --out "$OUT/convert-$first"
echo "total wall time: $(( $(date +%s) - start )) s"
