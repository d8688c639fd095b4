#!/usr/bin/env bash
# Sprites (Section 4.1) on a CPU, end to end: the data set from the LPC sheets, the judge,
# the narrow network (configs/sprites-cpu.yaml) with factorised q and with full q, each for
# a fixed time, then Table 1, the later-work protocol and Figures 3-4 for each run.
# One training at a time with every core. Safe to run again after a crash or a kill: the
# data set and the judge are reused, finished runs and evaluations are skipped, an
# interrupted run resumes from its last checkpoint (and trains up to MINUTES more).
#
#   nohup bash scripts/sprites_cpu.sh > sprites.log 2>&1 &
#
# SHEETS: the 25 LPC layers (default ../shared/data/lpc-sprites); DATA (default data/sprites);
# JUDGE (default judges/sprites); RUNS (default runs/sprites); OUT (default eval/sprites);
# POSTERIORS (default "factorised full"); MINUTES: training time per run (default 120);
# SEED; DSVAE: the command to run; EXTRA_SET: more config overrides for every run, e.g.
# "train.max_steps=20" for a smoke test.
# Everything written is derived from the CC-BY-SA / GPL art: keep it out of the repository.
set -euo pipefail
SHEETS=${SHEETS:-../shared/data/lpc-sprites}
DATA=${DATA:-data/sprites}
JUDGE=${JUDGE:-judges/sprites}
RUNS=${RUNS:-runs/sprites}
OUT=${OUT:-eval/sprites}
POSTERIORS=${POSTERIORS:-factorised full}
MINUTES=${MINUTES:-120}
SEED=${SEED:-0}
DSVAE=${DSVAE:-dsvae}
EXTRA_SET=${EXTRA_SET:-}
extra=()
for kv in $EXTRA_SET; do extra+=(--set "$kv"); done

stamp() { echo "[$(date '+%F %T')] $*"; }
start=$(date +%s)
if [ ! -f "$DATA/test/meta.json" ]; then
  [ -d "$SHEETS" ] || { echo "no sheets folder at $SHEETS: set SHEETS (or DATA to a built set)" >&2; exit 2; }
  stamp "data: $SHEETS -> $DATA"
  $DSVAE data sprites --sheets "$SHEETS" --out "$DATA" --overwrite
fi
if [ ! -f "$JUDGE/judge.safetensors" ]; then
  stamp "judge: $JUDGE"
  $DSVAE judge sprites --data "$DATA" --out "$JUDGE" --overwrite
fi
mkdir -p "$RUNS" "$OUT"

for posterior in $POSTERIORS; do
  name=sprites-cpu-$posterior-s$SEED
  run=$RUNS/$name
  if [ -f "$run/summary.json" ] && [ -f "$run/model/model.safetensors" ]; then
    stamp "skip $run (finished)"
  else
    resume=()
    if [ -f "$run/checkpoints/last.ckpt" ]; then
      resume=(--resume)
    elif [ -d "$run" ]; then
      rm -rf "$run"  # killed before its first checkpoint: nothing to keep
    fi
    stamp "train $run ${resume[*]:-}"
    $DSVAE train sprites-cpu --data "$DATA/train" --out "$run" \
      --set model.posterior="$posterior" --set train.seed="$SEED" \
      --set train.max_time_minutes="$MINUTES" --set train.progress_bar=false \
      "${extra[@]}" "${resume[@]}" >> "$run.log" 2>&1 || { stamp "FAILED $run (see $run.log)"; exit 1; }
    tail -1 "$run.log"
  fi
  if [ -f "$OUT/$name/sprites_eval.json" ] && [ "$OUT/$name/sprites_eval.json" -nt "$run/model/model.safetensors" ]; then
    stamp "skip the evaluation of $run (done)"
  else
    stamp "evaluate $run"
    $DSVAE evaluate sprites "$run" --judge "$JUDGE" --data "$DATA" --out "$OUT/$name" --seed "$SEED"
  fi
done
stamp "done in $(( $(date +%s) - start )) s"
