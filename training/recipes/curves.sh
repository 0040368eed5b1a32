#!/usr/bin/env bash
# Learning curves (pretrained vs random start and the frozen-representation and Magpie baselines), resumable:
#   bash training/recipes/curves.sh [OUT]        (OUT default runs/curves; rerun it to continue)
#   JOBS=2 bash training/recipes/curves.sh       (two processes share the cells: one core each)
# Finished cells are journalled in OUT/cells.jsonl; the committed copy training/results/curves/cells.jsonl seeds
# a fresh checkout, so a run continues where the last one stopped. Small sizes first, then the full train sets.
# CPU, one thread, at low priority; the report and figures go to docs/learning-curves.md and docs/learning-curves/,
# the start recommendation the training commands read to crystalsearch/data/learning_curves.json.
set -euo pipefail
out=${1:-runs/curves}
mkdir -p "$out"
if [ ! -s "$out/cells.jsonl" ] && [ -s training/results/curves/cells.jsonl ]; then
  cp training/results/curves/cells.jsonl "$out/cells.jsonl"
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cmd="nice -n 15 crystalsearch evaluate curves --out $out --report docs/learning-curves.md --reference crystalsearch/data/learning_curves.json"
run() {  # JOBS processes on one journal; each takes the cells no other holds
  local pids=()
  for _ in $(seq "${JOBS:-1}"); do $cmd "$@" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid"; done
}
run --sizes 25,50,100,200,500,1000
run -p bulk_modulus,shear_modulus,melting_temperature,thermal_conductivity --sizes all
run -p band_gap --sizes all
mkdir -p training/results/curves && cp "$out/cells.jsonl" training/results/curves/cells.jsonl
