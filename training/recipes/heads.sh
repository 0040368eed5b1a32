#!/usr/bin/env bash
# Property-head ensembles under the fixed protocol split, then their calibration:
#   bash training/recipes/heads.sh [OUT] [property ...]       (OUT default runs/heads; resumable: rerun it)
# 1. `crystalsearch train heads` trains 3 seeds per property on the protocol's train part (settings:
#    crystalsearch/configs/heads.toml, CPU-sized); a finished seed<k>/ is kept on rerun.
# 2. `crystalsearch evaluate calibration --fit` measures each ensemble on its test split and writes
#    calibration.json (+ composition.npz and manifest.json when stacking helps on validation) and README.md into OUT/<property>.
# 3. Ship: copy OUT/<property> over crystalsearch/models/heads/<property> (see training/results/calibration).
# Full size (GPU): EXTRA="--set max_train=0 --set epochs=200 --set patience=20" bash training/recipes/heads.sh
set -euo pipefail
out=${1:-runs/heads}
shift || true
props=("$@")
if [ ${#props[@]} -eq 0 ]; then
  props=(melting_temperature thermal_conductivity bulk_modulus shear_modulus formation_energy band_gap)
fi
for prop in "${props[@]}"; do
  if [ "$prop" = formation_energy ]; then
    # Four stages, as shipped: 40 cosine epochs (MSE, heads.toml), then each member continued for 60 cosine
    # epochs on the absolute error from lr 3e-4, 25 from lr 1e-4 and 30 from lr 2e-4 (warm start: encoder and
    # head of seed<k>). The shipped members ran stages 1-3 on the earlier label join (mp_structures energies
    # first) and stage 4 on the current one (MP release 2018.6.1 first; the head is rescaled to the new
    # standardisation); this recipe runs all four on the current labels.
    # shellcheck disable=SC2086
    crystalsearch train heads --property "$prop" --out "$out/$prop.stage1" ${EXTRA:-}
    # shellcheck disable=SC2086
    crystalsearch train heads --property "$prop" --out "$out/$prop.stage2" --set warm_start="$out/$prop.stage1" \
      --set loss=l1 --set lrs=3e-4 --set epochs=60 --set patience=60 ${EXTRA:-}
    # shellcheck disable=SC2086
    crystalsearch train heads --property "$prop" --out "$out/$prop.stage3" --set warm_start="$out/$prop.stage2" \
      --set loss=l1 --set lrs=1e-4 --set epochs=25 --set patience=25 ${EXTRA:-}
    # shellcheck disable=SC2086
    crystalsearch train heads --property "$prop" --out "$out/$prop" --set warm_start="$out/$prop.stage3" \
      --set loss=l1 --set lrs=2e-4 --set epochs=30 --set patience=30 ${EXTRA:-}
    continue
  fi
  # shellcheck disable=SC2086
  crystalsearch train heads --property "$prop" --out "$out/$prop" ${EXTRA:-}
done
for prop in "${props[@]}"; do
  crystalsearch evaluate calibration --property "$prop" --heads "$out/$prop" --fit --out "$out/calibration/$prop"
done
