"""Space group, crystal system, density and volume per atom of crystals given as arrays (spglib, no pymatgen).

Space groups are found with spglib at ``SYMPREC = 0.1`` Å (the tolerance the Materials Project uses for
the symmetry it displays). spglib takes about 3 ms per crystal, so the space groups of the shipped
structures are precomputed once into ``crystalsearch/search/data/symmetry.tsv.gz`` (keyed by a digest of
each crystal's arrays, so an edited structure is recomputed, never looked up stale):

    python -m crystalsearch.search.symmetry   # rewrites the shipped table
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from crystalsearch.atomic import atomic_write_bytes

__all__ = [
    "SYMPREC",
    "Symmetry",
    "cell_digest",
    "crystal_system",
    "density_and_volume",
    "resolve_spacegroup",
    "spacegroup_symbol",
    "symmetry_of",
    "symmetry_many",
]

SYMPREC = 0.1
TABLE = "symmetry.tsv.gz"
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
        assert t is not None
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
    """spglib's symmetry dataset of one crystal, trying tighter tolerances if spglib fails; None if all fail."""
    os.environ.setdefault("SPGLIB_WARNING", "OFF")  # spglib prints tolerance retries on stderr otherwise
    import spglib

    cell = (
        np.ascontiguousarray(lattice, dtype=np.float64),
        np.ascontiguousarray(frac_coords, dtype=np.float64),
        np.ascontiguousarray(numbers, dtype=np.int64),
    )
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
def shipped_table() -> dict[str, int]:
    """Cell digest -> space group number of the shipped structures (empty if the table is absent)."""
    try:
        data = resources.files("crystalsearch.search").joinpath("data").joinpath(TABLE).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return {}
    table: dict[str, int] = {}
    for line in gzip.decompress(data).decode("ascii").splitlines():
        if line and not line.startswith("#"):
            digest, number = line.split("\t")
            table[digest] = int(number)
    return table


def symmetry_many(
    cells: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], *, symprec: float = SYMPREC
) -> list[Symmetry]:
    """:func:`symmetry_of` for many crystals, looking the shipped ones up in the precomputed table."""
    table = shipped_table() if symprec == SYMPREC else {}
    out = []
    for lattice, frac, numbers in cells:
        number = table.get(cell_digest(lattice, frac, numbers))
        if number is None:
            out.append(symmetry_of(lattice, frac, numbers, symprec=symprec))
        else:
            out.append(Symmetry(number, spacegroup_symbol(number), crystal_system(number)))
    return out


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


def write_table(cells: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path) -> int:
    """Compute the space groups of ``cells`` and write the digest table to ``path`` (atomically)."""
    lines = ["# cell digest (blake2b-64 of float64 lattice, frac_coords, int64 Z)\tspace group number"]
    lines += [f"# spglib symprec={SYMPREC}"]
    seen: set[str] = set()
    for lattice, frac, numbers in cells:
        digest = cell_digest(lattice, frac, numbers)
        if digest not in seen:
            seen.add(digest)
            lines.append(f"{digest}\t{symmetry_of(lattice, frac, numbers).number}")
    atomic_write_bytes(path, gzip.compress(("\n".join(lines) + "\n").encode("ascii"), mtime=0))
    return len(seen)


def _main() -> None:
    from crystalsearch import datasets

    cells = [
        (r.lattice, r.frac_coords, r.atomic_numbers)
        for name in ("mp_structures", "mp_elasticity")
        for r in datasets.load(name).records
    ]
    path = Path(__file__).with_name("data") / TABLE
    print(f"{write_table(cells, path)} space groups written to {path}")


if __name__ == "__main__":
    _main()
