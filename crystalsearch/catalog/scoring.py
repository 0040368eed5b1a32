"""What "similar" means: a weighted sum of a structure similarity and a chemistry similarity.

Every indexed material has one vector ``[h | s]``: ``h`` the encoder's L2-normalised representation
(CrystalCLR+CS; it groups crystals mostly by chemistry) and ``s`` the L2-normalised structure
fingerprint of :mod:`crystalsearch.structure.fingerprint` (species-agnostic geometry). For a query,

    structure  S = (1 - PROTOTYPE_SHARE) * cos(s_q, s_x) + PROTOTYPE_SHARE * [same prototype label]
    chemistry  C = cos(h_q, h_x)
    score        = w * S + (1 - w) * C          (w = 1 for --by structure, 0 for chemistry)

so a material of the query's own structure type (same prototype label, :mod:`.prototype`) outranks
every other in ``structure`` mode, and ``both`` ranks isostructural analogues with shared chemistry
first. One FAISS inner product over the concatenated vectors, with the weights applied to the query's
parts, gives every candidate's score except the prototype bonus; the bonus is added exactly for the
FAISS candidates and for all materials with the query's label (from SQL), so no material carrying the
bonus can be missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["MODES", "PROTOTYPE_SHARE", "Ranking", "Scored", "default_weight", "rank"]

MODES = ("both", "structure", "chemistry")
PROTOTYPE_SHARE = 0.5
BOTH_WEIGHT = 0.5  # structure's share in "both": equal weights (w = 0.6, 0.55, 0.5, 0.4, 0.3 compared in
# training/results/structure_retrieval: 0.5 keeps shares-an-element P@10 above 0.90 with structure type first)
CANDIDATES = 64  # FAISS candidates re-scored exactly besides the prototype group: any k suffice for an exact top k
# (a missed row has at least k rows with a higher base score, and the bonus only raises scores); 64 gives IVF slack


def default_weight(mode: str) -> float:
    """Structure weight ``w`` of a ``--by`` mode."""
    if mode not in MODES:
        raise ValueError(f"--by must be one of {', '.join(MODES)}, got {mode!r}")
    return {"both": BOTH_WEIGHT, "structure": 1.0, "chemistry": 0.0}[mode]


@dataclass(frozen=True)
class Ranking:
    """How to score: structure weight ``w`` and the part sizes of the index's vectors."""

    weight: float
    chem_dim: int
    struct_dim: int

    def query(self, h: np.ndarray, s: np.ndarray | None) -> np.ndarray:
        """The weighted query vector whose inner product with ``[h | s]`` is the score minus the bonus."""
        q = np.zeros(self.chem_dim + self.struct_dim, dtype=np.float32)
        q[: self.chem_dim] = (1.0 - self.weight if self.struct_dim else 1.0) * np.asarray(h, dtype=np.float32)
        if self.struct_dim and s is not None:
            q[self.chem_dim :] = self.weight * (1.0 - PROTOTYPE_SHARE) * np.asarray(s, dtype=np.float32)
        return q

    @property
    def bonus(self) -> float:
        return self.weight * PROTOTYPE_SHARE if self.struct_dim else 0.0


@dataclass(frozen=True)
class Scored:
    row: int
    score: float
    structure: float | None  # S (None when the index has no structure part)
    chemistry: float  # C


def rank(
    vectors: Callable[[np.ndarray], np.ndarray],
    ranking: Ranking,
    h: np.ndarray,
    s: np.ndarray | None,
    candidates: np.ndarray,
    *,
    same_prototype: np.ndarray,
    k: int,
) -> list[Scored]:
    """Exact scores of the ``candidates`` and ``same_prototype`` rows (row id arrays), best ``k`` first
    (ties by row), from the query's parts ``h`` and ``s`` and the index's ``[h | s]`` rows (``vectors(ids)``
    returns them, e.g. ``VectorIndex.rows``)."""
    rows = np.union1d(np.asarray(candidates, dtype=np.int64), np.asarray(same_prototype, dtype=np.int64))
    if rows.size == 0:
        return []
    block = vectors(rows)
    cd = ranking.chem_dim
    chem = block[:, :cd] @ np.asarray(h, dtype=np.float32)
    if ranking.struct_dim and s is not None:
        same = np.isin(rows, same_prototype).astype(np.float64)
        struct = (1.0 - PROTOTYPE_SHARE) * (block[:, cd:] @ np.asarray(s, dtype=np.float32)) + PROTOTYPE_SHARE * same
        scores = ranking.weight * struct + (1.0 - ranking.weight) * chem
    else:
        struct, scores = None, chem.astype(np.float64)
    order = np.lexsort((rows, -scores))[:k]
    return [
        Scored(int(rows[i]), float(scores[i]), None if struct is None else float(struct[i]), float(chem[i]))
        for i in order
    ]
