#!/usr/bin/env bash
# Rebuild the checkpoints shipped in crystalsearch/models from finished pretraining runs:
#   bash training/recipes/ship_models.sh runs/crystalclr_cs runs/crystalclr
# 1. the two pretrained encoders (the CrystalCLR+CS one is `default`);
# 2. the fine-tuned property heads used by `crystalsearch predict` (3 seeds each: the ensemble spread is
#    the uncertainty). CPU-sized settings: elasticity heads on all 6,111 structures; formation energy
#    and band gap on the first 3,000 mp_structures records (sorted by material id).
set -euo pipefail
cs_run=${1:-runs/crystalclr_cs}
clr_run=${2:-runs/crystalclr}
models=crystalsearch/models
install() {  # atomic-ish: copy to a temporary sibling, then swap
  rm -rf "$2.partial" && cp -r "$1" "$2.partial" && rm -rf "$2" && mv "$2.partial" "$2"
}
if [ "${SKIP_ENCODERS:-0}" != 1 ]; then
  install "$cs_run/encoder" "$models/crystalclr_cs"
  install "$clr_run/encoder" "$models/crystalclr"
fi
for prop in bulk_modulus shear_modulus; do
  crystalsearch train finetune --property "$prop" --from "$models/crystalclr_cs" --seeds 3 \
    --out "$models/heads/$prop" --epochs 30 --set lrs=1e-3,3e-4 --set patience=6 --json
done
for prop in formation_energy band_gap; do
  crystalsearch train finetune --property "$prop" --from "$models/crystalclr_cs" --seeds 3 \
    --out "$models/heads/$prop" --epochs 15 --max-structures 3000 --set lrs=1e-3 --set patience=5 --json
done
