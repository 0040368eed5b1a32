"""Materials datasets shipped with crystalsearch (``crystalsearch/data``), loaded as immutable records.

Four datasets (see ``crystalsearch/data/README.md`` and ``NOTICE`` for provenance and licences):

- ``mp_structures``: 36,738 Materials Project structures with formation energy, band gap and Fermi level.
- ``mp_elasticity``: 6,111 MP structures with Voigt-Reuss-Hill bulk and shear moduli (the file's
  ``source`` column, which redistribution a label came from, is provenance and is dropped).
- ``thermal_conductivity``: AFLOW AGL lattice thermal conductivity at 300 K. AFLOW ships compositions
  only, so every row is joined to the lowest-``formation_energy_per_atom`` ``mp_structures`` polymorph
  with the same reduced formula. That join is a heuristic (the AFLOW prototype is unknown) and
  ``join_report.heuristic`` says so; unmatched rows are dropped and counted.
- ``melting_temperature``: experimental melting points of binaries. Rows join by ``material_id`` to
  ``mp_structures`` (then to ``mp_elasticity`` structures), and otherwise by reduced formula as above.
- ``mp2025``: every Materials Project material of database release 2025.02.12 (170,451 structures, cells
  exactly as the Materials Project gives them; see :mod:`crystalsearch.structpack`), with every label the
  other datasets hold joined by ``material_id``: formation energy, band gap and Fermi level from
  ``mp_structures`` (2018 calculations) else formation energy and band gap from the MEGNet set of MP release
  2018.6.1 (also 2018 calculations, next to 2025 structures); moduli from ``mp_elasticity``; thermal
  conductivity and melting temperature from those datasets' joins (a formula join stays marked heuristic).
  ``Record.provenance`` names, per label, where it came from (:data:`PROVENANCE` explains each key).

For joined records ``Record.formula`` is the formula of the structure that was joined (the source's
spelling may differ, e.g. AFLOW's ``Ho2In1Ni2``). If several rows map to the same material, the first
row is kept and the others are counted in ``JoinReport.n_duplicates`` (none in the shipped data).

``import crystalsearch.datasets`` is light: pymatgen is imported only when a structure or a reduced
formula is needed. Loaded datasets are cached per process and are read-only (tuples, read-only arrays,
mapping proxies), so sharing them is safe. ``Record.structure`` is cached too: copy it before mutating.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.properties import UNITS

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = ["DATASETS", "PROPERTY_UNITS", "Dataset", "JoinReport", "Record", "Split", "load", "make_split"]
__all__ += ["PROVENANCE", "reduced_formula"]

DATASETS: tuple[str, ...] = (
    "mp_structures", "mp_elasticity", "thermal_conductivity", "melting_temperature", "mp2025",
)  # fmt: skip

PROPERTY_UNITS: dict[str, str] = dict(UNITS)  # column -> unit (from the property registry)

# Where a label of an ``mp2025`` record came from (``Record.provenance`` values).
PROVENANCE: dict[str, str] = {
    "mp_structures": "Materials Project calculation of about 2018 (mp_structures), joined by material_id",
    "megnet_2018": "Materials Project release 2018.6.1 calculation (MEGNet set), joined by material_id",
    "mp_elasticity": "Materials Project DFT elastic tensor (Voigt-Reuss-Hill), joined by material_id",
    "material_id": "experimental value whose source names this material_id",
    "formula": "joined by reduced formula to the lowest-energy 2018 polymorph (heuristic)",
}

_MP_PROPERTIES = ("formation_energy_per_atom", "band_gap", "efermi")
_ELASTIC_PROPERTIES = ("bulk_modulus_vrh", "shear_modulus_vrh")


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
        return {p: PROPERTY_UNITS[p] for p in (*self.properties, *self.auxiliary)}

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


def load(name: str) -> Dataset:
    """Load a shipped dataset by name (one of :data:`DATASETS`); cached per process."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return _load(name)


@functools.cache
def _load(name: str) -> Dataset:
    if name == "mp_structures":
        return _load_source(name, "mp_structures.jsonl.gz", _MP_PROPERTIES, "Materials Project")
    if name == "mp_elasticity":
        return _load_source(name, "mp_elasticity.jsonl.gz", _ELASTIC_PROPERTIES, "MP elasticity")
    if name == "thermal_conductivity":
        return _load_thermal_conductivity()
    if name == "mp2025":
        from crystalsearch.catalog_data import load_mp2025

        return load_mp2025()
    return _load_melting_temperature()


def _data_file(filename: str) -> bytes:
    data = resources.files("crystalsearch").joinpath("data").joinpath(filename).read_bytes()
    return gzip.decompress(data) if filename.endswith(".gz") else data


def _read_csv(filename: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_data_file(filename).decode("utf-8"))))


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _frozen_array(value: Any, shape: tuple[int, int], where: str) -> np.ndarray:
    arr = np.array(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{where}: expected an array of shape {shape}, got {arr.shape}")
    arr.flags.writeable = False
    return arr


def _record(row: dict[str, Any], props: Sequence[str], where: str) -> Record:
    species = tuple(row["species"])
    return Record(
        material_id=row["material_id"],
        formula=row["formula"],
        lattice=_frozen_array(row["lattice"], (3, 3), where),
        species=species,
        frac_coords=_frozen_array(row["frac_coords"], (len(species), 3), where),
        properties=MappingProxyType({p: _plausible(p, _float(row[p])) for p in props}),
    )


# Values outside these bounds are data errors, not materials: they are read as NaN (missing). The shipped
# mp_elasticity file holds one shear modulus of 1.25e11 GPa (mp-2363, HfMo2: a data error), which alone
# would dominate any MAE. Bulk moduli are already within (0, 500] GPa in the source.
PLAUSIBLE_MAX = {"shear_modulus_vrh": 1000.0, "bulk_modulus_vrh": 1000.0}


def _plausible(prop: str, value: float) -> float:
    limit = PLAUSIBLE_MAX.get(prop)
    return float("nan") if limit is not None and not value <= limit else value


def _load_source(name: str, filename: str, props: tuple[str, ...], what: str) -> Dataset:
    lines = _data_file(filename).splitlines()
    records = tuple(
        _record(json.loads(line), props, f"{filename}: line {i}") for i, line in enumerate(lines, 1) if line
    )
    description = f"own structures: {len(records):,} {what} records, no join"
    report = JoinReport(len(records), 0, 0, 0, False, description, n_own_structures=len(records))
    return Dataset(name=name, records=records, properties=props, join_report=report)


@functools.lru_cache(maxsize=1)
def _lowest_energy_polymorphs() -> dict[str, Record]:
    """Reduced formula -> the ``mp_structures`` record with the lowest formation energy (ties: id)."""
    best: dict[str, Record] = {}
    for rec in _load("mp_structures").records:
        cur = best.get(rec.reduced_formula)
        if cur is None or _energy_key(rec) < _energy_key(cur):
            best[rec.reduced_formula] = rec
    return best


def _energy_key(rec: Record) -> tuple[float, str]:
    return rec.properties["formation_energy_per_atom"], rec.material_id


@dataclass
class _Joined:
    records: list[Record] = field(default_factory=list)
    by_id: int = 0
    by_elastic_id: int = 0  # of ``by_id``: structure from mp_elasticity (id not in mp_structures)
    by_formula: int = 0
    unmatched: int = 0
    duplicates: int = 0
    mismatched: list[str] = field(default_factory=list)  # id joins whose source formula disagrees


def _join_rows(
    rows: list[dict[str, str]], *, column: str, target: str, keep: tuple[str, ...] = (), by_id: bool
) -> _Joined:
    """Join label rows to structures: by material id (if ``by_id``), else by reduced formula."""
    mp = _load("mp_structures").records
    ids = {r.material_id: r for r in (*_load("mp_elasticity").records, *mp)} if by_id else {}
    mp_ids = {r.material_id for r in mp}
    polymorphs = _lowest_energy_polymorphs()
    out, seen = _Joined(), set()
    for row in rows:
        rec, join = ids.get(row.get("material_id", "")), "material_id"
        if rec is None:
            rec, join = polymorphs.get(reduced_formula(row["formula"])), "formula"
        if rec is None:
            out.unmatched += 1
            continue
        if rec.material_id in seen:
            out.duplicates += 1
            continue
        seen.add(rec.material_id)
        if join == "formula":
            out.by_formula += 1
        else:
            out.by_id += 1
            out.by_elastic_id += rec.material_id not in mp_ids
            if reduced_formula(row["formula"]) != rec.reduced_formula:
                out.mismatched.append(f"{rec.material_id}: {row['formula']} vs {rec.formula}")
        props = {target: float(row[column]), **{k: rec.properties[k] for k in keep}}
        out.records.append(replace(rec, properties=MappingProxyType(props), join=join))
    return out


def _load_thermal_conductivity() -> Dataset:
    rows = _read_csv("aflow_thermal_conductivity_300K.csv")
    keep = ("formation_energy_per_atom",)
    j = _join_rows(
        rows, column="thermal_conductivity_300K", target="thermal_conductivity", keep=keep, by_id=False
    )
    description = (
        f"AFLOW AGL compositions (no structures) joined by reduced formula to the lowest-energy "
        f"mp_structures polymorph (heuristic): {j.by_formula:,} of {len(rows):,} rows joined, "
        f"{j.unmatched:,} unmatched and {j.duplicates} duplicate-formula rows dropped (first row kept)"
    )
    report = JoinReport(len(rows), 0, j.by_formula, j.unmatched, True, description, n_duplicates=j.duplicates)
    return Dataset("thermal_conductivity", tuple(j.records), ("thermal_conductivity",), report, keep)


def _load_melting_temperature() -> Dataset:
    rows = _read_csv("melting_temperature.csv")
    j = _join_rows(rows, column="melting_temperature_K", target="melting_temperature", by_id=True)
    note = (
        f"; id join kept where the source formula differs ({', '.join(j.mismatched)})" if j.mismatched else ""
    )
    description = (
        f"MeLting rows joined by material_id ({j.by_id - j.by_elastic_id} to mp_structures, "
        f"{j.by_elastic_id} to mp_elasticity structures), then by reduced formula to the lowest-energy "
        f"mp_structures polymorph ({j.by_formula}, heuristic); {j.unmatched} unmatched and "
        f"{j.duplicates} duplicate rows dropped{note}"
    )
    report = JoinReport(
        len(rows),
        j.by_id,
        j.by_formula,
        j.unmatched,
        j.by_formula > 0,
        description,
        n_duplicates=j.duplicates,
    )
    return Dataset("melting_temperature", tuple(j.records), ("melting_temperature",), report)
