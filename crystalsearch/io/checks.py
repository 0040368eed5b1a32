"""Sanity checks that every structure passes before crystalsearch uses it.

``check_structure`` is applied to every structure that :func:`crystalsearch.io.read_structures` yields,
whatever its origin (CIF, POSCAR, JSON, Materials Project id). ``check_cell_parameters`` applies the
lattice thresholds to raw cell parameters *before* a structure is built, so that pathological files
(a nearly flat cell, for instance) are rejected without handing them to pymatgen's symmetry code.

Thresholds (all in Å / Å^3):

* lattice vector lengths must lie in [``MIN_LATTICE_LENGTH``, ``MAX_LATTICE_LENGTH``] = [0.5, 1000];
* the cell volume must be finite and positive, and the volume per atom must lie in
  [``MIN_VOLUME_PER_ATOM``, ``MAX_VOLUME_PER_ATOM``] = [1, 10,000] (solids sit around 5-100 Å^3/atom;
  more than 10,000 Å^3/atom is an almost empty box, less than 1 Å^3/atom is physically impossible);
* no two sites (periodic images included) may be closer than ``MIN_DISTANCE`` = 0.5 Å;
* at most ``max_sites`` sites per structure: ``DEFAULT_MAX_SITES`` = 500 unless the environment variable
  ``CRYSTALSEARCH_MAX_SITES`` says otherwise (up to ``MAX_SITES_CAP`` = 5,000; the CLI's global option
  ``crystalsearch --max-query-sites N <command>`` sets it, worker processes included). Checks and graphs grow
  with the sites (the overlap check with their square), and MP structures have at most ~300. Search's
  ``--max-sites`` is another thing: it filters the hits by size;
* every site must be fully occupied by one real element (no partial occupancy, vacancies or dummy
  species).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from crystalsearch.errors import InputError

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = [
    "DEFAULT_MAX_SITES",
    "MAX_LATTICE_LENGTH",
    "MAX_SITES_CAP",
    "MAX_SITES_ENV",
    "MAX_VOLUME_PER_ATOM",
    "MIN_DISTANCE",
    "MIN_LATTICE_LENGTH",
    "MIN_VOLUME_PER_ATOM",
    "check_cell_parameters",
    "check_structure",
    "max_sites_limit",
]

MIN_LATTICE_LENGTH = 0.5
MAX_LATTICE_LENGTH = 1000.0
MIN_VOLUME_PER_ATOM = 1.0
MAX_VOLUME_PER_ATOM = 10_000.0
MIN_DISTANCE = 0.5
DEFAULT_MAX_SITES = 500
MAX_SITES_CAP = 5000
MAX_SITES_ENV = "CRYSTALSEARCH_MAX_SITES"


def max_sites_limit() -> int:
    """Sites allowed per input structure: ``CRYSTALSEARCH_MAX_SITES`` when set (1 to :data:`MAX_SITES_CAP`),
    else :data:`DEFAULT_MAX_SITES`."""
    text = os.environ.get(MAX_SITES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_SITES
    if not text.isdigit() or not 1 <= int(text) <= MAX_SITES_CAP:
        raise InputError(MAX_SITES_ENV, f"must be a whole number from 1 to {MAX_SITES_CAP}, got {text!r}")
    return int(text)


_DISORDER_HINT = (
    "crystalsearch needs an ordered structure — order it first, e.g. pymatgen OrderDisorderedStructureTransformation"
)


def _check_lengths(lengths: tuple[float, float, float], *, source: str) -> None:
    for axis, length in zip("abc", lengths, strict=True):
        if not math.isfinite(length):
            raise InputError(source, f"absurd cell: lattice length {axis} is not a finite number")
        if length < MIN_LATTICE_LENGTH:
            raise InputError(
                source, f"absurd cell: lattice length {axis} = {length:.4g} Å is below {MIN_LATTICE_LENGTH} Å"
            )
        if length > MAX_LATTICE_LENGTH:
            raise InputError(
                source,
                f"absurd cell: lattice length {axis} = {length:.4g} Å exceeds {MAX_LATTICE_LENGTH:g} Å",
            )


def _check_volume(volume: float, n_atoms: int, *, source: str, lower_bound_only: bool = False) -> None:
    if not math.isfinite(volume) or volume <= 1e-8:
        raise InputError(source, f"absurd cell: degenerate lattice (volume {volume:.3g} Å^3)")
    if n_atoms <= 0:
        return
    per_atom = volume / n_atoms
    if per_atom < MIN_VOLUME_PER_ATOM:
        raise InputError(
            source,
            f"absurd cell: {per_atom:.3g} Å^3 per atom is below {MIN_VOLUME_PER_ATOM:g} Å^3 "
            f"(cell volume {volume:.3g} Å^3, nearly flat or collapsed)",
        )
    if not lower_bound_only and per_atom > MAX_VOLUME_PER_ATOM:
        raise InputError(
            source,
            f"absurd cell: {per_atom:.3g} Å^3 per atom exceeds {MAX_VOLUME_PER_ATOM:,.0f} Å^3 "
            f"(cell volume {volume:.3g} Å^3, mostly empty)",
        )


def check_cell_parameters(
    lengths: tuple[float, float, float],
    angles: tuple[float, float, float],
    *,
    source: str,
    min_atoms: int = 0,
) -> None:
    """Reject absurd raw cell parameters (a, b, c in Å; alpha, beta, gamma in degrees).

    ``min_atoms`` is a lower bound on the number of atoms in the cell (e.g. the number of rows of a CIF
    atom-site loop before symmetry expansion); it is used only for the minimum volume per atom.
    """
    _check_lengths(lengths, source=source)
    for name, angle in zip(("alpha", "beta", "gamma"), angles, strict=True):
        if not math.isfinite(angle) or not 0.0 < angle < 180.0:
            raise InputError(source, f"absurd cell: angle {name} = {angle:.4g}° is outside (0°, 180°)")
    cos_a, cos_b, cos_g = (math.cos(math.radians(x)) for x in angles)
    factor = 1.0 - cos_a**2 - cos_b**2 - cos_g**2 + 2.0 * cos_a * cos_b * cos_g
    if factor <= 0.0:
        raise InputError(
            source, f"absurd cell: angles {angles[0]:g}°, {angles[1]:g}°, {angles[2]:g}° give no valid cell"
        )
    volume = lengths[0] * lengths[1] * lengths[2] * math.sqrt(factor)
    _check_volume(volume, min_atoms, source=source, lower_bound_only=True)


def _species_label(structure: Structure, index: int) -> str:
    return str(structure[index].specie) if structure[index].is_ordered else structure[index].species.formula


def check_structure(structure: Structure, *, source: str, max_sites: int | None = None) -> None:
    """Raise :class:`~crystalsearch.errors.InputError` unless ``structure`` is usable.

    Checks, in order: at least one atom; finite lattice with sane lengths and volume per atom; at most
    ``max_sites`` sites; fully ordered sites of real elements; finite coordinates; no two sites (or a
    site and its own periodic image) closer than ``MIN_DISTANCE``. See the module docstring for the
    thresholds. ``max_sites`` defaults to :func:`max_sites_limit`.
    """
    import numpy as np

    max_sites = max_sites_limit() if max_sites is None else max_sites
    n_sites = len(structure)
    if n_sites == 0:
        raise InputError(source, "no atoms in the structure")

    matrix = np.asarray(structure.lattice.matrix, dtype=float)
    if matrix.shape != (3, 3) or not np.isfinite(matrix).all():
        raise InputError(source, "absurd cell: lattice matrix is not a finite 3x3 matrix")
    lengths = tuple(float(x) for x in np.linalg.norm(matrix, axis=1))
    _check_lengths((lengths[0], lengths[1], lengths[2]), source=source)
    _check_volume(abs(float(np.linalg.det(matrix))), n_sites, source=source)

    if n_sites > max_sites:
        raise InputError(source, f"{n_sites} sites is over the limit of {max_sites} per structure; raise it with "
                         f"`crystalsearch --max-query-sites N <command>` (N up to {MAX_SITES_CAP})")  # fmt: skip

    disordered = sum(1 for site in structure if not site.is_ordered)
    if disordered:
        raise InputError(source, f"disordered structure (partial occupancy on {disordered} sites); {_DISORDER_HINT}")
    from pymatgen.core import DummySpecies

    for index, site in enumerate(structure):
        if isinstance(site.specie, DummySpecies):
            symbol = getattr(site.specie, "symbol", str(site.specie))
            raise InputError(source, f"unknown element {symbol!r} on site {index} (not an element symbol)")

    frac = np.asarray(structure.frac_coords, dtype=float)
    if not np.isfinite(frac).all():
        raise InputError(source, "non-finite atomic coordinates")

    _check_overlaps(structure, source=source)


def _check_overlaps(structure: Structure, *, source: str) -> None:
    import numpy as np

    shortest = min(structure.lattice.get_lll_reduced_lattice().abc)
    if shortest < MIN_DISTANCE:
        raise InputError(
            source,
            f"overlapping atoms: each atom is {shortest:.3g} Å from its own periodic image (minimum {MIN_DISTANCE} Å)",
        )
    if len(structure) < 2:
        return
    # O(n^2) minimum-image distances: 250k pairs at the default 500 sites, 25 M at MAX_SITES_CAP.
    distances = np.array(structure.distance_matrix, dtype=float)
    np.fill_diagonal(distances, np.inf)
    flat = int(np.argmin(distances))
    i, j = divmod(flat, len(structure))
    if distances[i, j] < MIN_DISTANCE:
        raise InputError(
            source,
            f"overlapping atoms: sites {i} ({_species_label(structure, i)}) and {j} "
            f"({_species_label(structure, j)}) are {distances[i, j]:.3g} Å apart (minimum {MIN_DISTANCE} Å)",
        )
