"""Paired Table 1 comparison: per-seed differences against a hand computation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crystalsearch.evaluate.compare import main, paired


def test_paired_matches_hand_computation() -> None:
    a = {"seeds": [0, 1, 2, 3], "maes": [10.0, 12.0, 11.0, 13.0]}
    b = {"seeds": [1, 2, 3, 4], "maes": [13.0, 11.5, 14.0, 9.0]}  # seed 4 has no partner, seed 0 neither
    r = paired(a, b, prop="bulk_modulus", names=("A", "B"))
    # seeds 1, 2, 3: differences -1, -0.5, -1 -> mean -5/6, sample std sqrt(1/12)
    assert r.seeds == 3 and r.better == 3
    assert r.diff_mean == pytest.approx(-5 / 6) and r.diff_std == pytest.approx((1 / 12) ** 0.5)
    assert r.mean_a == pytest.approx(12.0) and r.mean_b == pytest.approx(38.5 / 3)
    assert r.spread == pytest.approx((19 / 12) ** 0.5)  # A: 12, 11, 13 -> std 1; B: 13, 11.5, 14 -> sqrt(19/12)
    assert not r.beyond_spread


def test_spread_is_the_larger_std_and_main_renders(tmp_path: Path) -> None:
    cells = {"finetune": {"melting_temperature": {
        "new": {"seeds": [0, 1, 2], "maes": [200.0, 210.0, 205.0]},
        "random": {"seeds": [0, 1, 2], "maes": [240.0, 250.0, 260.0]},
    }}}  # fmt: skip
    (tmp_path / "evaluations.json").write_text(json.dumps(cells))
    table = main([str(tmp_path), "finetune/new", "finetune/random"])
    # differences -40, -40, -55: mean -45, sample std sqrt(75); spread: random's std 10 > new's 5
    assert "| finetune/new | finetune/random | 205 | 250 | -45 ± 8.7 | 3 of 3 | 10 | yes |" in table
    with pytest.raises(SystemExit, match="no finetune/absent"):
        main([str(tmp_path), "finetune/new", "finetune/absent"])
