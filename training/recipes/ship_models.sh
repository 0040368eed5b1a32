#!/usr/bin/env bash
# Rebuild the checkpoints shipped in crystalsearch/models from finished pretraining runs:
#   bash training/recipes/ship_models.sh runs/crystalclr_cs runs/crystalclr
# 1. the two pretrained encoders (the CrystalCLR+CS one is `default`);
# 2. the fine-tuned property heads used by `crystalsearch predict`: seed ensembles on the fixed protocol
#    split, calibrated: training/recipes/heads.sh, then copied into crystalsearch/models/heads.
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
bash training/recipes/heads.sh runs/heads
for prop in melting_temperature thermal_conductivity bulk_modulus shear_modulus formation_energy band_gap; do
  install "runs/heads/$prop" "$models/heads/$prop"
done
crystalsearch evaluate calibration --fit --out training/results/calibration
