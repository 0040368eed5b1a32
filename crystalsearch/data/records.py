"""Records, datasets and splits: the immutable types every dataset loader returns (no loading here).

See :mod:`crystalsearch.data.datasets` for the shipped datasets and :func:`crystalsearch.data.datasets.load`.
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from crystalsearch.data.properties import UNITS

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = ["Dataset", "JoinReport", "Record", "Split", "make_split", "reduced_formula"]


@functools.cache
def reduced_formula(formula: str) -> str:
    """Reduced formula of a formula string (pymatgen ``Composition``), e.g. ``Ho2In1Ni2`` -> ``Ho2InNi2``."""
    from pymatgen.core import Composition

    with warnings.catch_warnings():  # pymatgen warns about noble gases' missing electronegativity
        warnings.simplefilter("ignore", UserWarning)
        return str(Composition(formula).reduced_formula)


@functools.cache
def _atomic_number(symbol: str) -> int:
    from pymatgen.core import Element

    return int(Element(symbol).Z)


_NO_PROVENANCE: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, eq=False)
class Record:
    """One material: its structure (lattice, species, fractional coordinates) and numeric properties.

    ``join`` is ``"source"`` for records that came with their own structure, ``"material_id"`` or
    ``"formula"`` for labels joined to a structure from another file. Properties that the source does
    not give (two ``efermi`` values in ``mp_structures``) are NaN. ``provenance`` maps each known label
    of an ``mp2025`` record to a :data:`PROVENANCE` key (empty elsewhere: the dataset is the source).
    Records compare by identity.
    """

    material_id: str
    formula: str
    lattice: np.ndarray
    species: tuple[str, ...]
    frac_coords: np.ndarray
    properties: Mapping[str, float]
    join: str = "source"
    provenance: Mapping[str, str] = field(default_factory=lambda: _NO_PROVENANCE)

    @property
    def num_sites(self) -> int:
        return len(self.species)

    @functools.cached_property
    def reduced_formula(self) -> str:
        """Reduced formula of the structure's composition (pymatgen ``Composition.reduced_formula``)."""
        return reduced_formula("".join(f"{el}{n}" for el, n in sorted(Counter(self.species).items())))

    @functools.cached_property
    def atomic_numbers(self) -> np.ndarray:
        z = np.array([_atomic_number(s) for s in self.species], dtype=np.int64)
        z.flags.writeable = False
        return z

    @functools.cached_property
    def structure(self) -> Structure:
        """The pymatgen ``Structure``, built on first access and cached (shared: ``.copy()`` to edit)."""
        from pymatgen.core import Lattice, Structure

        return Structure(Lattice(self.lattice), list(self.species), self.frac_coords)


@dataclass(frozen=True)
class JoinReport:
    """How a dataset's labels were matched to structures.

    Row accounting: ``n_own_structures + n_joined_by_id + n_joined_by_formula + n_unmatched +
    n_duplicates == n_source_rows``; every own or joined row is one record (``n_records``).
    """

    n_source_rows: int
    n_joined_by_id: int
    n_joined_by_formula: int
    n_unmatched: int
    heuristic: bool
    description: str
    n_own_structures: int = 0
    n_duplicates: int = 0

    @property
    def n_records(self) -> int:
        return self.n_own_structures + self.n_joined_by_id + self.n_joined_by_formula


@dataclass(frozen=True, eq=False)
class Split:
    """Index arrays (sorted ``int64``) into a dataset's records; disjoint, and together all records."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def labelled(self, y: np.ndarray, *, n: int | None = None) -> Split:
        """The same split restricted to records below ``n`` (default: all of ``y``) with a finite label
        ``y`` (missing values, and those beyond ``PLAUSIBLE_MAX``, are NaN)."""
        ok = np.isfinite(np.asarray(y, dtype=np.float64))
        limit = len(ok) if n is None else min(n, len(ok))
        train, val, test = (s[s < limit] for s in (self.train, self.val, self.test))
        return Split(train=train[ok[train]], val=val[ok[val]], test=test[ok[test]])


@dataclass(frozen=True, eq=False)
class Dataset:
    """An immutable, indexable collection of :class:`Record` with target properties and a join report.

    ``properties`` are the targets; ``auxiliary`` are further properties every record carries (e.g. the
    formation energy of the polymorph a thermal-conductivity label was joined to).
    """

    name: str
    records: tuple[Record, ...]
    properties: tuple[str, ...]
    join_report: JoinReport
    auxiliary: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Record:
        return self.records[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    @property
    def units(self) -> dict[str, str]:
        """Unit of every property the records carry (targets first)."""
        return {p: UNITS[p] for p in (*self.properties, *self.auxiliary)}

    @property
    def material_ids(self) -> list[str]:
        return [r.material_id for r in self.records]

    def targets(self, prop: str) -> np.ndarray:
        """Values of ``prop`` for every record, as a float64 array in record order."""
        if prop not in self.properties and prop not in self.auxiliary:
            valid = ", ".join((*self.properties, *self.auxiliary))
            raise ValueError(f"dataset {self.name!r} has no property {prop!r}; valid: {valid}")
        return np.fromiter((r.properties[prop] for r in self.records), dtype=np.float64, count=len(self))

    def split(
        self,
        *,
        seed: int = 0,
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        group_by_formula: bool = False,
    ) -> Split:
        """Deterministic train/val/test split by material (``numpy`` ``default_rng(seed)``).

        Sizes are ``round(f_train * n)``, ``round(f_val * n)`` and the rest. With ``group_by_formula``
        all records sharing a reduced formula land in the same part (leakage-safe): the unique formulas
        are permuted and assigned greedily, so sizes approximate the fractions.
        """
        groups = [r.reduced_formula for r in self.records] if group_by_formula else None
        return make_split(len(self), seed=seed, fractions=fractions, groups=groups)


def make_split(
    n: int,
    *,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    groups: Sequence[str] | None = None,
) -> Split:
    """Split ``range(n)`` into train/val/test; see :meth:`Dataset.split`. ``groups`` keeps labels together."""
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions!r}")
    n_train = int(round(fr[0] * n))
    n_val = min(int(round(fr[1] * n)), n - n_train)
    rng = np.random.default_rng(seed)
    if groups is None:
        perm = rng.permutation(n)
        parts = [perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]]
    else:
        if len(groups) != n:
            raise ValueError(f"groups has {len(groups)} labels for {n} items")
        _, inverse, sizes = np.unique(np.array(groups, dtype=str), return_inverse=True, return_counts=True)
        order = rng.permutation(len(sizes))
        before = np.cumsum(sizes[order]) - sizes[order]  # items in earlier groups (permuted order)
        in_train = before < n_train
        in_val = ~in_train & (before - sizes[order][in_train].sum() < n_val)
        part_of_group = np.full(len(sizes), 2, dtype=np.int64)
        part_of_group[order[in_train]] = 0
        part_of_group[order[in_val]] = 1
        part = part_of_group[inverse.reshape(-1)]
        parts = [np.flatnonzero(part == k) for k in range(3)]
    train, val, test = (np.sort(p).astype(np.int64) for p in parts)
    return Split(train=train, val=val, test=test)
