#!/usr/bin/env bash
# Every GPU row of BENCHMARKS.md in one go: SD1.5-sized random models, 512x512, fp16.
# About 10 minutes on one H100/H200 once spbench is installed (`make install`); COMPILE=1 adds
# the torch.compile rows.
#   bash benchmarks/gpu.sh [OUT_DIR]        # figures as JSON in OUT_DIR (default benchmarks/out)
#   SMOKE=1 bash benchmarks/gpu.sh /tmp/o   # the same commands with tiny models on the CPU and
#                                           # few steps (~3 min): checks the script, measures nothing
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/out}
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if [ "${SMOKE:-0}" = 1 ]; then
  ON="--size tiny --device cpu"; STEPS="--steps 2"; PROMPTS=2; EVAL_PROMPTS="--prompts 2"; SCALE_PROMPTS=1
  echo "SMOKE=1: tiny models on the CPU, 2 steps; these figures mean nothing" | tee "$OUT/gpu.txt"
else
  ON="--size real --device cuda"; STEPS=""; PROMPTS=9; EVAL_PROMPTS=""; SCALE_PROMPTS=4
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
# FLOPs of a step and the measured matmul rate (fp16), then MFU of one step.
$PY benchmarks/flops.py $ON $STEPS --json "$OUT/flops.json"
# Engine vs naive pipeline loop, 9 prompts x 3 images, UniPC 50 steps, CFG 7.5.
$PY benchmarks/generation.py $ON $STEPS --prompts $PROMPTS --batch-sizes 3,6,12,24 --json "$OUT/generation.json"
# MFU of the best generation row (images/s from the table above).
RATE=$($PY -c "import json,sys; r=json.load(open(sys.argv[1]))['rows']; print(max(v['images_per_s'] for v in r.values()))" "$OUT/generation.json")
$PY benchmarks/flops.py $ON $STEPS --images-per-s "$RATE" --repeats 3 --json "$OUT/mfu.json"
# Each metric at real model size, and end to end.
$PY benchmarks/evaluation.py $ON $EVAL_PROMPTS --json "$OUT/evaluation.json"
# 1x, 4x, 16x the prompts: time linear, memory flat.
$PY benchmarks/scale.py $ON $STEPS --base-prompts $SCALE_PROMPTS --batch-size 12 --json "$OUT/scale.json"
# Optional (COMPILE=1, a few minutes more): generation.compile against the eager engine at B=12.
if [ "${COMPILE:-0}" = 1 ]; then
  $PY benchmarks/generation.py $ON $STEPS --prompts $PROMPTS --batch-sizes 12 --compile --json "$OUT/compile.json"
fi
