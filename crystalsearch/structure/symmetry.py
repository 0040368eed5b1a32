"""Space group, crystal system, density and volume per atom of crystals given as arrays (spglib, no pymatgen).

Space groups are found with spglib at ``SYMPREC = 0.1`` Å (the tolerance the Materials Project uses for
the symmetry it displays). spglib takes about 3 ms per crystal, so the space groups (and prototype labels)
of all shipped structures are precomputed into one table, keyed by :func:`cell_digest` of each crystal's
arrays so that an edited structure is recomputed, never looked up stale: see
:mod:`crystalsearch.structure.prototype` (``labels_many``, ``python -m crystalsearch.structure.prototype``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SYMPREC",
    "Symmetry",
    "cell_digest",
    "crystal_system",
    "density_and_volume",
    "resolve_spacegroup",
    "spacegroup_symbol",
    "symmetry_of",
]

SYMPREC = 0.1
_SYSTEMS = (
    (2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
    (167, "trigonal"), (194, "hexagonal"), (230, "cubic"),
)  # fmt: skip
AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660


@dataclass(frozen=True)
class Symmetry:
    """Space group number (1-230), its international short symbol and the crystal system."""

    number: int
    symbol: str
    crystal_system: str


def cell_digest(lattice: np.ndarray, frac_coords: np.ndarray, numbers: np.ndarray) -> str:
    """16 hex digits identifying a crystal's exact arrays (float64 lattice and coordinates, int64 numbers)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.ascontiguousarray(lattice, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(frac_coords, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(numbers, dtype=np.int64).tobytes())
    return h.hexdigest()


def crystal_system(number: int) -> str:
    for last, name in _SYSTEMS:
        if number <= last:
            return name
    raise ValueError(f"space group number must be 1-230, got {number}")


@functools.cache
def _spacegroup_types() -> tuple[dict[int, str], dict[str, int]]:
    """Number -> short symbol (standard setting), and normalised short/full symbol -> number."""
    import spglib

    symbols: dict[int, str] = {}
    lookup: dict[str, int] = {}
    for hall in range(1, 531):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            t = spglib.get_spacegroup_type(hall)
        assert t is not None  # noqa: S101 - an invariant that narrows the type, not an input check
        number = int(t.number)
        symbols.setdefault(number, str(t.international_short))
        for name in (t.international_short, t.international_full, t.international):
            lookup.setdefault(_normalise_symbol(str(name)), number)
    return symbols, lookup


def _normalise_symbol(symbol: str) -> str:
    return "".join(symbol.split()).replace("_", "")


def spacegroup_symbol(number: int) -> str:
    """International short symbol of space group ``number`` in its standard setting (225 -> ``Fm-3m``)."""
    return _spacegroup_types()[0][number]


def resolve_spacegroup(text: str) -> int:
    """Space group number from a number (``225``) or a Hermann-Mauguin symbol (``Fm-3m``, ``P4_2/mnm``).

    Spaces and underscores are ignored (``P42/mnm``, ``F m -3 m``); raises ValueError for unknown ones.
    """
    text = text.strip()
    if text.isdigit():
        number = int(text)
        if 1 <= number <= 230:
            return number
        raise ValueError(f"space group number must be 1-230, got {number}")
    lookup = _spacegroup_types()[1]
    key = _normalise_symbol(text)
    if key in lookup:
        return lookup[key]
    folded = {k.lower(): v for k, v in lookup.items()}
    if key.lower() in folded:
        return folded[key.lower()]
    raise ValueError(f"unknown space group {text!r} (give a number 1-230 or a symbol such as Fm-3m)")


def spglib_dataset(
    lattice: np.ndarray, frac_coords: np.ndarray, numbers: np.ndarray, *, symprec: float = SYMPREC
) -> Any:
    """spglib's symmetry dataset of one crystal, trying tighter tolerances if spglib fails; None if all fail.

    The last few datasets are kept (by the exact cell and tolerance): the space group, the prototype label and
    the primitive cell of one crystal come from one symmetry search."""
    cell = (
        np.ascontiguousarray(lattice, dtype=np.float64),
        np.ascontiguousarray(frac_coords, dtype=np.float64),
        np.ascontiguousarray(numbers, dtype=np.int64),
    )
    key = (cell[0].tobytes(), cell[1].tobytes(), cell[2].tobytes(), float(symprec))
    if key in _DATASETS:
        _DATASETS.move_to_end(key)
        return _DATASETS[key]
    dataset = _search(cell, symprec)
    _DATASETS[key] = dataset
    if len(_DATASETS) > _KEPT:
        _DATASETS.popitem(last=False)
    return dataset


_DATASETS: OrderedDict[tuple[bytes, bytes, bytes, float], Any] = OrderedDict()
_KEPT = 64  # a chunk of candidates is keyed before it is checked (novelty: 32 files a chunk)


def _search(cell: tuple[np.ndarray, np.ndarray, np.ndarray], symprec: float) -> Any:
    os.environ.setdefault("SPGLIB_WARNING", "OFF")  # spglib prints tolerance retries on stderr otherwise
    import spglib

    with warnings.catch_warnings():  # spglib deprecation notes about its error handling
        warnings.simplefilter("ignore", DeprecationWarning)
        for tol in (symprec, symprec / 10, symprec / 100):
            try:
                dataset = spglib.get_symmetry_dataset(cell, symprec=tol)  # type: ignore[arg-type]
            except spglib.SpglibError:
                dataset = None
            if dataset is not None:
                return dataset
    return None


def symmetry_of(
    lattice: np.ndarray, frac_coords: np.ndarray, numbers: np.ndarray, *, symprec: float = SYMPREC
) -> Symmetry:
    """Space group of one crystal with spglib; falls back to tighter tolerances, then to P1."""
    dataset = spglib_dataset(lattice, frac_coords, numbers, symprec=symprec)
    number = 1 if dataset is None else int(dataset.number)
    return Symmetry(number, spacegroup_symbol(number), crystal_system(number))


@functools.cache
def _atomic_masses() -> np.ndarray:
    from pymatgen.core import Element

    masses = np.zeros(119, dtype=np.float64)
    for z in range(1, 119):
        masses[z] = float(Element.from_Z(z).atomic_mass)
    return masses


def density_and_volume(lattice: np.ndarray, numbers: np.ndarray) -> tuple[float, float]:
    """(density in g/cm^3, volume per atom in Å^3)."""
    volume = abs(float(np.linalg.det(np.asarray(lattice, dtype=np.float64))))
    mass = float(_atomic_masses()[np.asarray(numbers, dtype=np.int64)].sum())
    n = max(len(numbers), 1)
    return mass * AMU_PER_A3_TO_G_PER_CM3 / volume, volume / n
