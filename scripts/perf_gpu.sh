#!/usr/bin/env bash
# Throughput on one GPU, side by side with the naive step, in one short run (a few minutes):
# the paper's Sprites network at batch 25 (the reference implementation's batch) and 128,
# then batch 128 with torch.compile, plain and with CUDA graphs (mode reduce-overhead; the
# compile time is reported apart as warmup_s); inference at batch 128 is also timed with
# batch norm folded (--fold-bn). LARGE=1 adds batch 256 compiled (the larger batch that
# train.lr_reference_batch scales the learning rate for).
#
#   OUT=out bash scripts/perf_gpu.sh
#
# Writes OUT/*.json (full reports) and OUT/*.md (the tables for docs/performance.md).
# COMPILE=0 skips the torch.compile run; CPU=1 adds the CPU config on this machine's CPU;
# STAGE_TIMEOUT (seconds, default 300) bounds each benchmark; PYTHON picks the interpreter;
# DEVICE (default cuda) and BENCH_EXTRA (more bench.py options, e.g. "--tiny" for a rehearsal).
set -uo pipefail
OUT=${OUT:?set OUT to the output folder}
PYTHON=${PYTHON:-python}
COMPILE=${COMPILE:-1}
CPU=${CPU:-0}
LARGE=${LARGE:-0}
STAGE_TIMEOUT=${STAGE_TIMEOUT:-300}
DEVICE=${DEVICE:-cuda}
BENCH_EXTRA=${BENCH_EXTRA:-}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>/dev/null || true
B="timeout $STAGE_TIMEOUT $PYTHON benchmarks/bench.py --device $DEVICE --peak-tflops ${PEAK_TFLOPS:-990} --steps 20 --rounds 3 --warmup 5 $BENCH_EXTRA"
status=0
$B --configs sprites --batch 25 --no-inference --json "$OUT/perf-b25.json" --markdown "$OUT/perf-b25.md" || status=1
$B --configs sprites --batch 128 --fold-bn --json "$OUT/perf-b128.json" --markdown "$OUT/perf-b128.md" || status=1
if [ "$COMPILE" = 1 ]; then
  $B --configs sprites --batch 128 --compile --no-inference \
    --json "$OUT/perf-b128-compile.json" --markdown "$OUT/perf-b128-compile.md" || status=1
  # CUDA graphs of the compiled step (torch.compile mode reduce-overhead)
  $B --configs sprites --batch 128 --compile --compile-mode reduce-overhead --no-inference \
    --json "$OUT/perf-b128-graphs.json" --markdown "$OUT/perf-b128-graphs.md" || status=1
fi
if [ "$LARGE" = 1 ]; then
  $B --configs sprites --batch 256 --compile --no-inference \
    --json "$OUT/perf-b256-compile.json" --markdown "$OUT/perf-b256-compile.md" || status=1
fi
if [ "$CPU" = 1 ]; then
  timeout "$STAGE_TIMEOUT" $PYTHON benchmarks/bench.py --device cpu --configs sprites-cpu --batch 32 \
    --steps 5 --rounds 3 --no-inference --json "$OUT/perf-cpu.json" --markdown "$OUT/perf-cpu.md" || status=1
fi
exit $status
