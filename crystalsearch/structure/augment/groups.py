"""Periodic-table groups used by column replacement.

Groups 1-18 are the standard IUPAC columns, restricted to Z <= 100 (the elements of the CGCNN atom
table). The f-block is our choice, stated here: the lanthanides La-Lu (Z 57-71) form one group and the
actinides Ac-Fm (Z 89-100) another, so group 3 holds only Sc and Y. Lanthanides share the +3 valence
and similar radii, so replacing within the series is the closest analogue of the paper's same-column
(isoelectronic valence) swap; the 32-column pairing (Ce-Th, Pr-Pa, ...) would leave Tm, Yb and Lu
without a partner in the 100-element table.
"""

from __future__ import annotations

import functools

import numpy as np

GROUPS: dict[str, tuple[int, ...]] = {
    "1": (1, 3, 11, 19, 37, 55, 87),
    "2": (4, 12, 20, 38, 56, 88),
    "3": (21, 39),
    "4": (22, 40, 72),
    "5": (23, 41, 73),
    "6": (24, 42, 74),
    "7": (25, 43, 75),
    "8": (26, 44, 76),
    "9": (27, 45, 77),
    "10": (28, 46, 78),
    "11": (29, 47, 79),
    "12": (30, 48, 80),
    "13": (5, 13, 31, 49, 81),
    "14": (6, 14, 32, 50, 82),
    "15": (7, 15, 33, 51, 83),
    "16": (8, 16, 34, 52, 84),
    "17": (9, 17, 35, 53, 85),
    "18": (2, 10, 18, 36, 54, 86),
    "lanthanides": tuple(range(57, 72)),
    "actinides": tuple(range(89, 101)),
}

MAX_Z = 100


@functools.lru_cache(maxsize=1)
def group_of() -> dict[int, str]:
    """Atomic number -> group name."""
    return {z: name for name, members in GROUPS.items() for z in members}


@functools.lru_cache(maxsize=1)
def partner_table() -> tuple[np.ndarray, np.ndarray]:
    """``(partners [101, M], counts [101])``: the other elements of each element's group, -1 padded."""
    width = max(len(m) for m in GROUPS.values()) - 1
    partners = np.full((MAX_Z + 1, width), -1, dtype=np.int64)
    counts = np.zeros(MAX_Z + 1, dtype=np.int64)
    for members in GROUPS.values():
        for z in members:
            others = [o for o in members if o != z]
            partners[z, : len(others)] = others
            counts[z] = len(others)
    return partners, counts
