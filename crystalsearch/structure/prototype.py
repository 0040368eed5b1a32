"""Symmetry-based prototype labels (AFLOW-style) of crystals given as arrays, with spglib.

A label names a structure type independently of chemistry: ``AB_cF8_225_m-3m_m-3m`` for rocksalt,
``AB_cF8_216_-43m_-43m`` for zincblende, ``AB_hP4_186_3m._3m.`` for wurtzite, ``A_cF8_227_-43m`` for
diamond, ``AB2_tP6_136_m.mm_m.2m`` for rutile, ``ABC3_cP5_221_m-3m_m-3m_4/mm.m`` for cubic perovskite.
Its parts, as in AFLOW's prototype labels (stoichiometry, Pearson symbol, space group, Wyckoff sites):

- stoichiometry pattern: the reduced composition's counts, smallest first, as letters (``AB2``)
- Pearson symbol: crystal family + centring letter + atoms in the conventional standard cell (``tP6``)
- space group number (spglib, ``symprec`` 0.1 Å as the Materials Project)
- per species, in the pattern's order: the site-symmetry symbols of its Wyckoff orbits, sorted,
  repeats counted (``2x.m.``), several orbits joined by ``+``

Two choices differ from AFLOW's letters, both so that isostructural crystals share one label. Species
are ordered by count, then by their sites, not alphabetically (AFLOW gives rutile TiO2 and SnO2 different
labels). Sites are named by their site symmetry, not their Wyckoff letter, because the letter depends on
the origin chosen among equivalent ones: spglib puts Ti of SrTiO3 at 1b and of BaTiO3 at 1a, diamond Si
at 8a and Ge at 8b; the site symmetry is the same either way. The price: two inequivalent Wyckoff
positions with the same site symmetry are not told apart (rare; a geometric similarity ranks within a
label anyway).
"""

from __future__ import annotations

import functools
import gzip
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from crystalsearch.structure.symmetry import spglib_dataset

if TYPE_CHECKING:
    from crystalsearch.structure.symmetry import Symmetry

__all__ = ["SYMPREC", "SymmetryLabel", "labels_many", "shipped_labels", "symmetry_label", "write_table"]

SYMPREC = 0.1
_FAMILY = ((2, "a"), (15, "m"), (74, "o"), (142, "t"), (167, "h"), (194, "h"), (230, "c"))


@dataclass(frozen=True)
class SymmetryLabel:
    """Space group number and the prototype label of one crystal (``number`` 1 and ``""`` if spglib failed)."""

    number: int
    prototype: str

    def symmetry(self) -> Symmetry:
        """The space group as :class:`crystalsearch.structure.symmetry.Symmetry` (number, symbol, system)."""
        from crystalsearch.structure.symmetry import Symmetry, crystal_system, spacegroup_symbol

        return Symmetry(self.number, spacegroup_symbol(self.number), crystal_system(self.number))


def _family(number: int) -> str:
    return next(letter for last, letter in _FAMILY if number <= last)


def _centring(number: int, hall_symbol: str) -> str:
    letter = hall_symbol.lstrip("-")[0].upper()
    if 143 <= number <= 194 and letter == "R":
        return "R"
    return {"P": "P", "I": "I", "F": "F", "R": "R", "A": "S", "B": "S", "C": "S"}.get(letter, "P")


def _orbits(symbols: list[str]) -> str:
    """One species' orbits as their site-symmetry symbols, sorted, repeats counted (``2x.m.``)."""
    counts = Counter(symbols)
    return "+".join(f"{n}x{sym}" if n > 1 else sym for sym, n in sorted(counts.items()))


def _label_from(
    number: int, hall_symbol: str, n_conventional: int, per_species: dict[int, str], counts: dict[int, int]
) -> str:
    divisor = reduce(math.gcd, counts.values())
    order = sorted(per_species, key=lambda s: (counts[s], per_species[s]))
    pattern = "".join(f"{chr(ord('A') + i)}{counts[s] // divisor if counts[s] // divisor > 1 else ''}"
                      for i, s in enumerate(order))  # fmt: skip
    pearson = f"{_family(number)}{_centring(number, hall_symbol)}{n_conventional}"
    return "_".join([pattern, pearson, str(number), *(per_species[s] for s in order)])


def symmetry_label(
    lattice: np.ndarray, frac_coords: np.ndarray, numbers: np.ndarray, *, symprec: float = SYMPREC
) -> SymmetryLabel:
    """Space group and prototype label of one crystal; tighter tolerances are tried if spglib fails."""
    z = np.ascontiguousarray(numbers, dtype=np.int64)
    data = spglib_dataset(lattice, frac_coords, z, symprec=symprec)
    if data is None:
        return SymmetryLabel(1, "")
    equivalent = np.asarray(data.crystallographic_orbits)
    site_symmetry = list(data.site_symmetry_symbols)
    per_species: dict[int, list[str]] = {}
    sites_per_species: Counter[int] = Counter(int(x) for x in z)
    for rep in np.unique(equivalent):
        per_species.setdefault(int(z[rep]), []).append(str(site_symmetry[rep]))
    letters = {s: _orbits(ws) for s, ws in per_species.items()}
    label = _label_from(int(data.number), str(data.hall), len(data.std_types), letters, dict(sites_per_species))
    return SymmetryLabel(int(data.number), label)


# -- the shipped table ---------------------------------------------------------------------------------
TABLE = "prototypes.tsv.gz"


@functools.cache
def shipped_labels() -> dict[str, SymmetryLabel]:
    """Cell digest -> label of every shipped structure (empty if the table is absent)."""
    try:
        data = resources.files("crystalsearch.data").joinpath(TABLE).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return {}
    table: dict[str, SymmetryLabel] = {}
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        if line and not line.startswith("#"):
            digest, number, label = line.split("\t")
            table[digest] = SymmetryLabel(int(number), label)
    return table


def labels_many(cells: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[SymmetryLabel]:
    """:func:`symmetry_label` of many crystals, shipped ones looked up (by exact arrays) in the table."""
    from crystalsearch.structure.symmetry import cell_digest

    table = shipped_labels()
    out = []
    for lattice, frac, numbers in cells:
        found = table.get(cell_digest(lattice, frac, numbers))
        out.append(found if found is not None else symmetry_label(lattice, frac, numbers))
    return out


def _label_cell(cell: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[str, SymmetryLabel]:
    from crystalsearch.structure.symmetry import cell_digest

    return cell_digest(*cell), symmetry_label(*cell)


def write_table(path: Path, *, workers: int = 1) -> int:
    """Label every shipped structure (all datasets) and write the digest table to ``path``."""
    from crystalsearch.atomic import atomic_write_bytes
    from crystalsearch.data import datasets

    cells: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name in ("mp2025", "mp_structures", "mp_elasticity"):
        for r in datasets.load(name).records:
            cells.setdefault(r.material_id + name, (r.lattice, r.frac_coords, r.atomic_numbers))
    lines = [f"# cell digest (search.symmetry.cell_digest)\tspace group\tprototype (spglib symprec={SYMPREC})"]
    if workers > 1:
        from multiprocessing import get_context

        with get_context("fork").Pool(workers) as pool:
            results = pool.imap(_label_cell, list(cells.values()), chunksize=256)
            rows = dict(results)
    else:
        rows = dict(_label_cell(c) for c in cells.values())
    lines += [f"{d}\t{lab.number}\t{lab.prototype}" for d, lab in rows.items()]
    atomic_write_bytes(path, gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))
    return len(rows)


if __name__ == "__main__":
    import sys

    target = Path(__file__).parents[1] / "data" / TABLE
    print(f"{write_table(target, workers=int(sys.argv[1]) if len(sys.argv) > 1 else 1)} labels written to {target}")
