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
  exactly as the Materials Project gives them; see :mod:`crystalsearch.data.structpack`), with every label the
  other datasets hold joined by ``material_id``: formation energy, band gap and Fermi level from
  ``mp_structures`` (2018 calculations) else formation energy and band gap from the MEGNet set of MP release
  2018.6.1 (also 2018 calculations, next to 2025 structures); moduli from ``mp_elasticity``; thermal
  conductivity and melting temperature from those datasets' joins (a formula join stays marked heuristic).
  ``Record.provenance`` names, per label, where it came from (:data:`PROVENANCE` explains each key).

For joined records ``Record.formula`` is the formula of the structure that was joined (the source's
spelling may differ, e.g. AFLOW's ``Ho2In1Ni2``). If several rows map to the same material, the first
row is kept and the others are counted in ``JoinReport.n_duplicates`` (none in the shipped data).

``import crystalsearch.data.datasets`` is light: pymatgen is imported only when a structure or a reduced
formula is needed. Loaded datasets are cached per process and are read-only (tuples, read-only arrays,
mapping proxies), so sharing them is safe. ``Record.structure`` is cached too: copy it before mutating.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.data.properties import UNITS
from crystalsearch.data.records import Dataset, JoinReport, Record, Split, make_split, reduced_formula

if TYPE_CHECKING:
    pass

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
        from crystalsearch.data.catalog_data import load_mp2025

        return load_mp2025(load=_load)
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
    j = _join_rows(rows, column="thermal_conductivity_300K", target="thermal_conductivity", keep=keep, by_id=False)
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
    note = f"; id join kept where the source formula differs ({', '.join(j.mismatched)})" if j.mismatched else ""
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
