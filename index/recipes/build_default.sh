#!/usr/bin/env bash
# (Re)build the default search index after the default encoder (crystalsearch/models/crystalclr_cs) changes.
#
#   bash index/recipes/build_default.sh            # into the package: crystalsearch/models/index
#   bash index/recipes/build_default.sh --cache    # into the user cache (what `similar` builds on first use)
#
# Python equivalent:
#   from pathlib import Path
#   from crystalsearch.model.embed import Encoder
#   from crystalsearch.catalog.build import build_index
#   build_index("all", encoder=Encoder.load("default"), out=Path("crystalsearch/models/index"))
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ "${1:-}" == "--cache" ]]; then
  crystalsearch index build --dataset all --encoder default
  crystalsearch index info --verify
else
  crystalsearch index build --dataset all --encoder default --out crystalsearch/models/index
  crystalsearch index info --index crystalsearch/models/index --verify
fi
# recall@1/@10 of transformed copies (after `evaluate retrieval` is wired into crystalsearch/cli/evaluate.py)
crystalsearch evaluate retrieval -n 200
