"""StructureMatcher's comparison of two reduced cells, on plain arrays: pymatgen's verdict, a fraction of its time.

pymatgen's ``StructureMatcher`` (``primitive_cell``, ``scale``, no supercells, species by element) spends most
of a comparison building ``Lattice`` and ``Structure`` objects for every candidate lattice and translation.
:func:`cell_rms` runs the same algorithm on numpy arrays, every translation of one lattice at once:

1. both volumes scaled to their geometric mean; different site counts or species never match;
2. every basis of the first cell's lattice whose lengths are within ``ltol`` (fractional) and angles within
   ``angle_tol`` of the second's, with determinant ±1 (``Lattice.find_all_mappings``);
3. for each basis, the translations that put a site of the species rarest in the second cell onto each site of
   that species in the first; a translation is tried when every site lands within ``stol`` (as a fraction of
   the average lattice's free length per atom) of a site of its species in each fractional direction;
4. for each tried translation, the optimal assignment (scipy's ``linear_sum_assignment``) of shortest
   periodic displacements (27 images of the average lattice's LLL basis), the mean displacement removed;
   normalised by ``(V/n)^(1/3)``.

The result is pymatgen's ``fit`` and ``get_rms_dist`` together: the smallest RMS displacement when it is
below ``stol`` and some tried mapping has every displacement below ``stol`` (``fit``), else None.
``tests/test_cellmatch.py`` compares it with pymatgen on real pairs (matches, polymorphs, substitutions,
noise). Inputs must already be reduced (:func:`crystalsearch.structure.matching.reduce_cell`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = ["Cell", "cell_from_json", "cell_rms", "lattice_bases", "lattice_parameters"]

_IMAGES = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.float64)
_EXACT = 1e-5  # an RMS this small ends the search (as pymatgen's does)
_CHUNK = 400_000  # (mapping, translation, site, site) pairs compared at once: bounds the memory of one step


@dataclass(frozen=True, eq=False)
class Cell:
    """A periodic cell as arrays: lattice rows (Å), fractional coordinates, atomic numbers (or the numbers of
    class representatives, for disordered matching)."""

    lattice: np.ndarray
    frac: np.ndarray
    numbers: np.ndarray

    def __len__(self) -> int:
        return len(self.numbers)

    @classmethod
    def of(cls, structure: Structure) -> Cell:
        """The cell of an ordered pymatgen structure."""
        numbers = np.array([site.specie.Z for site in structure], dtype=np.int64)
        return cls(np.array(structure.lattice.matrix, dtype=np.float64), np.array(structure.frac_coords), numbers)

    def structure(self) -> Structure:
        from pymatgen.core import Element, Lattice, Structure

        species = [Element.from_Z(int(z)) for z in self.numbers]
        return Structure(Lattice(self.lattice), species, self.frac)

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.lattice)))


def cell_from_json(text: str) -> Cell:
    """The cell of compact structure JSON (lattice rows, species symbols, fractional coordinates), without
    building a pymatgen structure."""
    import json

    obj = json.loads(text)
    numbers = np.array([_atomic_number(str(sp)) for sp in obj["species"]], dtype=np.int64)
    return Cell(np.array(obj["lattice"], dtype=np.float64), np.array(obj["frac_coords"], dtype=np.float64), numbers)


@functools.lru_cache(maxsize=256)
def _atomic_number(species: str) -> int:
    from pymatgen.core import get_el_sp

    return int(get_el_sp(species).Z)


def cell_rms(a: Cell, b: Cell, *, ltol: float = 0.2, stol: float = 0.3, angle_tol: float = 5.0) -> float | None:
    """pymatgen's normalised RMS displacement of ``b`` mapped onto ``a`` when StructureMatcher matches them
    (``fit``), else None. Both reduced already; degenerate lattices never match."""
    n = len(a)
    if n != len(b) or n == 0 or not np.array_equal(np.sort(a.numbers), np.sort(b.numbers)):
        return None
    va, vb = a.volume, b.volume
    if not (va > 0 and vb > 0):
        return None
    ratio = (vb / va) ** (1 / 6)
    la, lb = a.lattice * ratio, b.lattice / ratio
    mask = b.numbers[:, None] != a.numbers[None, :]  # (b site, a site): not allowed
    anchor = int(np.argmax(mask.sum(axis=1)))  # the b site of the species rarest in a
    targets = np.flatnonzero(~mask[anchor])
    bases = lattice_bases(la, *lattice_parameters(lb), ltol=ltol, angle_tol=angle_tol)
    chunk = max(1, _CHUNK // (len(targets) * n * n))
    best, fits = math.inf, False
    for start in range(0, len(bases), chunk):
        found = _tried(a.frac @ la, b.frac, bases[start : start + chunk], lb, mask, targets, anchor, stol)
        for rms, largest in found:
            fits = fits or largest < stol
            best = min(best, rms)
        if best < _EXACT and fits:
            break
    return best if best < stol and fits else None


def _tried(
    cart_a: np.ndarray,
    b_frac: np.ndarray,
    bases: np.ndarray,
    lb: np.ndarray,
    mask: np.ndarray,
    targets: np.ndarray,
    anchor: int,
    stol: float,
) -> list[tuple[float, float]]:
    """(RMS, largest displacement) of every tried (lattice mapping, translation): every mapping of ``bases``
    at once, each translation putting site ``anchor`` of b onto a site ``targets`` of a, tried when every
    site lands near one of its species (pymatgen's ``is_coord_subset_pbc``)."""
    n = len(cart_a)
    fc = cart_a[None, :, :] @ np.linalg.inv(bases)  # (mapping, a site, 3)
    fc -= np.floor(fc)
    avg = _average_lattices(bases, lb)
    norm = (n / np.abs(np.linalg.det(avg))) ** (1 / 3)
    frac_tol = _reciprocal_lengths(avg) * stol / (np.pi * norm[:, None])
    shifts = fc[:, targets] - b_frac[anchor]  # (mapping, shift, 3)
    m, t = np.nonzero(np.ones(shifts.shape[:2], dtype=bool))
    for sites in _stages(len(b_frac)):  # a few sites first: most translations fail on them
        moved = b_frac[None, sites, :] + shifts[m, t][:, None, :]  # (tried, b site, 3)
        d = moved[:, :, None, :] - fc[m][:, None, :, :]
        close = np.all(np.abs(d - np.round(d)) <= frac_tol[m][:, None, None, :], axis=-1) & ~mask[sites]
        keep = close.any(axis=2).all(axis=1)
        m, t = m[keep], t[keep]
        if len(m) == 0:
            return []
    moved = b_frac[None, :, :] + shifts[m, t][:, None, :]
    lll, lll_inv = _lll(avg, np.unique(m))
    lll_tol = _reciprocal_lengths(lll) * stol / (np.pi * norm[:, None])
    step = max(1, _CHUNK // (n * n))  # tried pairs of cells compared at once
    found: list[tuple[float, float]] = []
    for k in range(0, len(m), step):
        part = slice(k, k + step)
        mm = m[part]
        d2, vectors = _shortest(moved[part], fc[mm], lll[mm], lll_inv[mm], mask, lll_tol[mm])
        found += _assigned(d2, vectors, norm[mm])
    return found


def _stages(n: int) -> list[np.ndarray]:
    """The b sites tested in each stage of the subset test: the first four, then the rest."""
    first = min(n, 4)
    return [np.arange(first)] + ([np.arange(first, n)] if n > first else [])


def _shortest(
    s2: np.ndarray, s1: np.ndarray, lll: np.ndarray, lll_inv: np.ndarray, mask: np.ndarray, lll_tol: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each tried pair of cells (``s2[k]``, ``s1[k]``, fractional): squared shortest periodic distances
    between their sites (27 images of the LLL basis ``lll[k]``) and the vectors, 1e20 where the pair is masked
    or farther than ``lll_tol[k]`` in an LLL fractional direction (pymatgen's ``pbc_shortest_vectors``).
    Only the pairs within are computed."""
    f1 = s1 @ lll_inv
    f2 = s2 @ lll_inv  # (tried, b site, 3)
    fd = f1[:, None, :, :] - f2[:, :, None, :]
    within = ~mask[None] & np.all(np.abs(fd - np.round(fd)) <= lll_tol[:, None, None, :], axis=-1)
    k, i, j = np.nonzero(within)
    pre = ((f1 % 1.0) @ lll)[k, j] - ((f2 % 1.0) @ lll)[k, i]
    candidates = pre[:, None, :] + (_IMAGES[None, :, :] @ lll)[k]
    d2_all = np.einsum("mkl,mkl->mk", candidates, candidates)
    best = np.argmin(d2_all, axis=1)
    rows = np.arange(len(best))
    d2 = np.full(within.shape, 1e20)
    vectors = np.full((*within.shape, 3), 1e20)
    d2[k, i, j] = d2_all[rows, best]
    vectors[k, i, j] = candidates[rows, best]
    return d2, vectors


def _assigned(d2: np.ndarray, vectors: np.ndarray, norm: np.ndarray) -> list[tuple[float, float]]:
    """(RMS, largest) normalised displacement of the optimal assignment of the sites of each tried pair (rows
    to columns of ``d2[k]``), the mean displacement removed (pymatgen's ``_cart_dists``)."""
    from scipy.optimize import linear_sum_assignment

    n = d2.shape[1]
    cols = np.array([linear_sum_assignment(one)[1] for one in d2]).reshape(len(d2), n)
    short = vectors[np.arange(len(d2))[:, None], np.arange(n)[None, :], cols]  # (tried, site, 3)
    short = short - short.mean(axis=1, keepdims=True)
    dist = np.sqrt(np.einsum("kij,kij->ki", short, short)) * norm[:, None]
    rms = np.sqrt(np.mean(dist**2, axis=1))
    return list(zip(rms.tolist(), dist.max(axis=1).tolist()))


def lattice_parameters(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lengths and angles (degrees, alpha beta gamma) of lattices (..., 3, 3), as ``Lattice.lengths``/``angles``."""
    lengths = np.sqrt(np.sum(matrix**2, axis=-1))
    cosines = [np.sum(matrix[..., (d + 1) % 3, :] * matrix[..., (d + 2) % 3, :], axis=-1)
               / (lengths[..., (d + 1) % 3] * lengths[..., (d + 2) % 3]) for d in range(3)]  # fmt: skip
    return lengths, np.rad2deg(np.arccos(np.clip(np.stack(cosines, axis=-1), -1, 1)))


def _average_lattices(bases: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """``Lattice.from_parameters`` of the mean lattice parameters of each basis and ``m2`` (StructureMatcher's
    ``av_lat``), (mapping, 3, 3)."""
    l1, a1 = lattice_parameters(bases)
    l2, a2 = lattice_parameters(m2)
    lengths, angles = (l1 + l2) / 2, np.radians((a1 + a2) / 2)
    a, b, c = lengths.T
    cos_al, cos_be, cos_ga = np.cos(angles).T
    sin_al, sin_be = np.sin(angles).T[:2]
    gamma_star = np.arccos(np.clip((cos_al * cos_be - cos_ga) / (sin_al * sin_be), -1, 1))
    out = np.zeros((len(bases), 3, 3))
    out[:, 0, 0], out[:, 0, 2] = a * sin_be, a * cos_be
    out[:, 1] = np.stack([-b * sin_al * np.cos(gamma_star), b * sin_al * np.sin(gamma_star), b * cos_al], axis=1)
    out[:, 2, 2] = c
    return out


def _reciprocal_lengths(matrix: np.ndarray) -> np.ndarray:
    """Lengths of the reciprocal lattice vectors (with 2π) of lattices (..., 3, 3)."""
    return np.sqrt(np.sum((2 * np.pi * np.swapaxes(np.linalg.inv(matrix), -1, -2)) ** 2, axis=-1))


def _lll(matrices: np.ndarray, needed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pymatgen's LLL-reduced bases (delta 0.75) of the lattices ``needed`` and the inverses of their integer
    mappings (identity elsewhere); equal lattices (symmetry-equivalent mappings) reduced once."""
    from pymatgen.core import Lattice

    lll = np.array(matrices, dtype=np.float64)
    inverse = np.tile(np.eye(3), (len(matrices), 1, 1))
    done: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    for m in needed:
        key = matrices[m].tobytes()
        if key not in done:
            lattice = Lattice(matrices[m])
            done[key] = (lattice.lll_matrix, lattice.lll_inverse)
        lll[m], inverse[m] = done[key]
    return lll, inverse


def lattice_bases(
    la: np.ndarray, lengths: np.ndarray, angles: np.ndarray, *, ltol: float, angle_tol: float
) -> np.ndarray:
    """Bases of lattice ``la`` whose vectors have ``lengths`` and ``angles`` within the tolerances and
    determinant ±1 (``Lattice.find_all_mappings`` filtered as StructureMatcher does for one cell)."""
    radius = float(max(lengths)) * (1 + ltol)
    reach = np.ceil(radius * np.sqrt(np.sum(np.linalg.inv(la).T ** 2, axis=1))).astype(int)
    grid = np.stack(np.meshgrid(*(np.arange(-r, r + 1) for r in reach), indexing="ij"), axis=-1).reshape(-1, 3)
    cart = grid @ la
    dist = np.sqrt(np.sum(cart**2, axis=1))
    keep = dist <= radius
    grid, cart, dist = grid[keep], cart[keep], dist[keep]
    picks = [(dist / ln < 1 + ltol) & (dist / ln > 1 / (1 + ltol)) for ln in lengths]
    (ca, cb, cc), (fa, fb, fc), (da, db, dc) = ([x[p] for p in picks] for x in (cart, grid, dist))
    if not (len(ca) and len(cb) and len(cc)):
        return np.zeros((0, 3, 3))
    alpha, beta, gamma = (np.abs(_angles(u, v, lu, lv) - target) <= angle_tol
                          for u, v, lu, lv, target in ((cb, cc, db, dc, angles[0]), (ca, cc, da, dc, angles[1]),
                                                       (ca, cb, da, db, angles[2])))  # fmt: skip
    triples = np.argwhere(gamma[:, :, None] & alpha[None, :, :] & beta[:, None, :])
    if len(triples) == 0:
        return np.zeros((0, 3, 3))
    scale = np.stack([fa[triples[:, 0]], fb[triples[:, 1]], fc[triples[:, 2]]], axis=1)
    dets = np.abs(np.linalg.det(scale.astype(np.float64)))
    unit = np.abs(dets - 1) <= 0.5
    i, j, k = triples[unit].T
    return np.stack([ca[i], cb[j], cc[k]], axis=1)


def _angles(v1: np.ndarray, v2: np.ndarray, l1: np.ndarray, l2: np.ndarray) -> np.ndarray:
    x = np.inner(v1, v2) / l1[:, None] / l2
    return np.rad2deg(np.arccos(np.clip(x, -1, 1)))
