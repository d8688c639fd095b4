#!/usr/bin/env bash
# Sprites (Section 4.1) on a CPU, end to end: the data set from the LPC sheets, the judge,
# the final recipes of the narrow network, each for a fixed time and each seed, then
# Table 1, the later-work protocol and Figures 3-4 on the test characters for each run,
# and the machine-readable summary of all finished runs.
# One training at a time with every core. Safe to run again after a crash or a kill: the
# data set and the judge are reused, finished runs and evaluations are skipped, an
# interrupted run resumes from its last checkpoint (its time cap counts the time before).
#
#   nohup bash scripts/sprites_cpu.sh > sprites.log 2>&1 &
#   RECIPES=contrastive SEEDS="0 1" nohup bash scripts/sprites_cpu.sh > sprites.log 2>&1 &
#
# RECIPES (default "factorised full contrastive"): factorised / full are the paper's
# objective (configs/sprites-cpu.yaml with that posterior); contrastive is the later-work
# recipe (configs/sprites-cpu-contrastive.yaml). SEEDS (default "0"). MINUTES: training
# time per run (default 120). SHEETS: the 25 LPC layers (default ../shared/data/lpc-sprites);
# DATA (default data/sprites); JUDGE (default judges/sprites); RUNS (default runs/sprites);
# OUT (default eval/sprites: one folder per run, manifest.yaml and sprites-summary.json);
# HARDWARE: how to name the training machine in the summary (default: what the evaluation
# records); DSVAE: the command to run; PYTHON (default python); EXTRA_SET: more config
# overrides for every run, e.g. "train.max_steps=20" for a smoke test.
# Everything written is derived from the CC-BY-SA / GPL art: keep it out of the repository.
set -euo pipefail
SHEETS=${SHEETS:-../shared/data/lpc-sprites}
DATA=${DATA:-data/sprites}
JUDGE=${JUDGE:-judges/sprites}
RUNS=${RUNS:-runs/sprites}
OUT=${OUT:-eval/sprites}
RECIPES=${RECIPES:-${POSTERIORS:-factorised full contrastive}}
SEEDS=${SEEDS:-${SEED:-0}}
MINUTES=${MINUTES:-120}
HARDWARE=${HARDWARE:-}
DSVAE=${DSVAE:-dsvae}
PYTHON=${PYTHON:-python}
EXTRA_SET=${EXTRA_SET:-}
here=$(cd "$(dirname "$0")" && pwd)
extra=()
for kv in $EXTRA_SET; do extra+=(--set "$kv"); done

stamp() { echo "[$(date '+%F %T')] $*"; }
# the config and the overrides of one recipe
recipe_args() {
  case "$1" in
    factorised|full) echo "sprites-cpu --set model.posterior=$1" ;;
    contrastive) echo "sprites-cpu-contrastive" ;;
    *) echo "unknown recipe '$1' in RECIPES: use factorised, full or contrastive" >&2; return 2 ;;
  esac
}
for recipe in $RECIPES; do recipe_args "$recipe" > /dev/null || exit 2; done
for seed in $SEEDS; do
  case "$seed" in ''|*[!0-9]*) echo "SEEDS must be integers >= 0, got '$seed'" >&2; exit 2 ;; esac
done

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

manifest=$OUT/manifest.yaml
: > "$manifest.tmp"
for seed in $SEEDS; do
  for recipe in $RECIPES; do
    read -r -a config <<< "$(recipe_args "$recipe")"
    name=sprites-cpu-$recipe-s$seed
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
      $DSVAE train "${config[@]}" --data "$DATA/train" --out "$run" --judge "$JUDGE" \
        --set train.seed="$seed" --set train.max_time_minutes="$MINUTES" \
        --set train.progress_bar=false "${extra[@]}" "${resume[@]}" >> "$run.log" 2>&1 \
        || { stamp "FAILED $run (see $run.log)"; exit 1; }
      tail -1 "$run.log"
    fi
    if [ -f "$OUT/$name/sprites_eval.json" ] && [ "$OUT/$name/sprites_eval.json" -nt "$run/model/model.safetensors" ]; then
      stamp "skip the evaluation of $run (done)"
    else
      stamp "evaluate $run on the test characters"
      $DSVAE evaluate sprites "$run" --judge "$JUDGE" --data "$DATA" --out "$OUT/$name" \
        --seed "$seed" --split test
    fi
    echo "- {name: $name, config: ${config[0]}, run: $run, eval: $OUT/$name${HARDWARE:+, hardware: \"$HARDWARE\"}}" >> "$manifest.tmp"
  done
done
mv "$manifest.tmp" "$manifest"
$PYTHON "$here/sprites_summary.py" "$manifest" --out "$OUT/sprites-summary.json"
stamp "done in $(( $(date +%s) - start )) s"
