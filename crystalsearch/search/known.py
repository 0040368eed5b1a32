""" "Is it known?": decide with pymatgen's StructureMatcher which indexed materials are the query's structure.

Only materials with the query's reduced formula can match (StructureMatcher compares reduced
compositions), so the candidates are exactly the indexed rows with that formula, tried in order of
embedding similarity (at most ``max_candidates`` of them). Default tolerances (``ltol=0.2``,
``stol=0.3``, ``angle_tol=5``, primitive cells, volumes scaled) treat small strains and
perturbations of a known crystal as that crystal, while a different composition is never a match.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = ["MatcherConfig", "matching_rows"]


@dataclass(frozen=True)
class MatcherConfig:
    """StructureMatcher tolerances and how many same-formula candidates to try."""

    ltol: float = 0.2
    stol: float = 0.3
    angle_tol: float = 5.0
    max_candidates: int = 30


def matching_rows(
    query: Structure, candidates: Sequence[tuple[int, Structure]], *, config: MatcherConfig = MatcherConfig()
) -> list[int]:
    """Rows of the candidates that StructureMatcher considers the same structure as ``query``."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(ltol=config.ltol, stol=config.stol, angle_tol=config.angle_tol)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row, structure in candidates[: config.max_candidates]:
            try:
                if matcher.fit(query, structure):
                    out.append(row)
            except (ValueError, ArithmeticError):  # degenerate lattices: not a match
                continue
    return out
