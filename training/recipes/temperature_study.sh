#!/usr/bin/env bash
# Temperature study for CrystalCLR+CS (the paper does not state its temperature).
# Short runs: 2,048 shipped MP structures, 2 epochs, batch 256; the validation signal is the ridge
# probe of bulk modulus (GPa, mp_elasticity val split) plus alignment/uniformity.
set -euo pipefail
out=${1:-runs/temperature_study}
for t in 0.05 0.1 0.2 0.5; do
  crystalsearch train pretrain --config training/configs/crystalclr_cs.toml --temperature "$t" \
    --max-structures 2048 --epochs 2 --batch-size 256 --out "$out/t$t" --set name="temperature_$t" --json > "$out/t$t.json"
done
