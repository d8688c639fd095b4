#!/usr/bin/env bash
# Throughput on one GPU, side by side with the naive step, in one short run (a few minutes):
# the paper's Sprites network at batch 25 (the reference implementation's batch) and 128,
# with and without torch.compile, plus the CPU config on the same machine's CPU.
#
#   OUT=out bash scripts/perf_gpu.sh
#
# Writes OUT/*.json (full reports) and OUT/*.md (the tables for docs/performance.md).
set -euo pipefail
OUT=${OUT:?set OUT to the output folder}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>/dev/null || true
B="python benchmarks/bench.py --device cuda --peak-tflops ${PEAK_TFLOPS:-990} --steps 20 --rounds 3 --warmup 5"
$B --configs sprites --batch 25 --json "$OUT/sprites-b25.json" --markdown "$OUT/sprites-b25.md"
$B --configs sprites --batch 128 --json "$OUT/sprites-b128.json" --markdown "$OUT/sprites-b128.md"
$B --configs sprites --batch 128 --compile --no-inference \
  --json "$OUT/sprites-b128-compile.json" --markdown "$OUT/sprites-b128-compile.md"
python benchmarks/bench.py --device cpu --configs sprites-cpu --batch 32 --steps 5 --rounds 3 \
  --no-inference --json "$OUT/cpu.json" --markdown "$OUT/cpu.md"
