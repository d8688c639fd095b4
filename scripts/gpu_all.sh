#!/usr/bin/env bash
# Every GPU measurement of the docs in one run that fits a fixed time budget on one GPU:
#   0. a smoke run of the whole chain at tiny size (about half a minute; stops early on error);
#   1. the Sprites set built from the LPC sheets (on the CPU);
#   2. the throughput benchmarks of docs/performance.md (scripts/perf_gpu.sh);
#   3. the paper network trained for the time that is left and evaluated with the judge
#      (scripts/sprites_gpu.sh): Table 1, the later-work protocol, Figures 3-4;
#   4. time_to_result.json/.md (scripts/time_to_result.py): the step's rate, the training
#      run's end-to-end rate and seconds by stage, the epochs and the Table 1 reached.
# Each stage writes into OUT as it goes, so a run cut short still leaves what it finished.
#
#   SHEETS=.device/lpc-sprites JUDGE=.device/judge OUT=out BUDGET=540 bash scripts/gpu_all.sh
#
# SHEETS: the LPC layers (licensed: keep them in an ignored folder). JUDGE: a trained judge
# to reuse (default: train one, about a minute). BUDGET: seconds for the whole script.
# EVAL_RESERVE: seconds kept for the evaluation after training (default 90).
# PACK: an archive path; after every stage OUT is packed into it (for machines that hand
# back only a few files). SMOKE=0 skips stage 0. DSVAE and PYTHON: the commands to use (default dsvae, python).
# DEVICE=cpu with BENCH_EXTRA=--tiny and EXTRA_SET=... rehearses the chain without a GPU.
set -uo pipefail
SHEETS=${SHEETS:?set SHEETS to the folder of LPC sheets}
OUT=${OUT:?set OUT to the output folder}
BUDGET=${BUDGET:-540}
EVAL_RESERVE=${EVAL_RESERVE:-90}
SMOKE=${SMOKE:-1}
export DSVAE=${DSVAE:-dsvae} PYTHON=${PYTHON:-python} DEVICE=${DEVICE:-cuda} PYTHONUNBUFFERED=1
WORK=${WORK:-$(mktemp -d)}
start=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - start) )); }
stamp() {
  echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$OUT/stages.log"
  if [ -n "${PACK:-}" ]; then tar czf "$PACK.tmp" -C "$OUT" . && mv "$PACK.tmp" "$PACK"; fi
}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
$PYTHON -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" \
  2>&1 | tee "$OUT/versions.txt"

if [ "$SMOKE" = 1 ]; then
  stamp "smoke run"
  tiny=(--set model.f_dim=8 --set model.z_dim=4 --set model.hidden_dim=16 --set "model.frames.channels=[8,8]"
        --set "model.frames.strides=[2,2]" --set model.frames.feature_dim=16 --set train.max_steps=5
        --set train.progress_bar=false --set train.pictures_every_n_epochs=0)
  smoke_judge=${JUDGE:-$WORK/smoke-judge}
  { $DSVAE data sprites --sheets "$SHEETS" --out "$WORK/smoke-data" --characters 2 \
    && { [ -n "${JUDGE:-}" ] || $DSVAE judge sprites --data "$WORK/smoke-data" --out "$smoke_judge" --epochs 1; } \
    && $DSVAE train sprites --data "$WORK/smoke-data/train" --out "$WORK/smoke-run" "${tiny[@]}" \
    && $DSVAE evaluate sprites "$WORK/smoke-run" --judge "$smoke_judge" --data "$WORK/smoke-data" \
         --out "$WORK/smoke-eval" --trajectories 4 --device "$DEVICE" \
    && $PYTHON benchmarks/bench.py --device "$DEVICE" --tiny --configs sprites --batch 4 --steps 2 --rounds 1 \
         --warmup 1 --infer-sequences 8 --infer-batch 4; } > "$OUT/smoke.log" 2>&1
  code=$?
  tail -5 "$OUT/smoke.log"
  if [ $code != 0 ]; then stamp "smoke run FAILED (exit $code): see smoke.log"; exit 1; fi
fi

stamp "data"
$DSVAE data sprites --sheets "$SHEETS" --out "$WORK/sprites" > "$OUT/data.log" 2>&1 || stamp "data FAILED"
stamp "benchmarks"
OUT="$OUT" STAGE_TIMEOUT=${STAGE_TIMEOUT:-150} bash scripts/perf_gpu.sh > "$OUT/perf.log" 2>&1 \
  || stamp "a benchmark FAILED or ran out of time: see perf.log"
minutes=$(awk -v s="$(left)" -v r="$EVAL_RESERVE" 'BEGIN { m = (s - r - 40) / 60; printf "%.2f", (m < 0.5 ? 0.5 : m) }')
stamp "sprites: training for $minutes minutes"
OUT="$OUT" DATA="$WORK/sprites" WORK="$WORK" MINUTES="$minutes" \
  bash scripts/sprites_gpu.sh > "$OUT/sprites.log" 2>&1 || stamp "sprites FAILED: see sprites.log"
# the step rate, dsvae train's end-to-end rate and the Table 1 reached, side by side
$PYTHON scripts/time_to_result.py "$OUT" > "$OUT/time_to_result.log" 2>&1 || stamp "time_to_result FAILED"
stamp "done"
