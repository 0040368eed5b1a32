"""Does similarity find the query's structure type? Retrieval measured against pymatgen's StructureMatcher.

Truth: two materials have the same structure type when ``StructureMatcher(comparator=
FrameworkComparator(), primitive_cell=True, scale=True, attempt_supercell=False)`` (species ignored,
default tolerances) matches them. Verdicts are cached on disk (``<cache>/matcher/framework.jsonl``).

For random query materials (seeded; at most ``max_sites`` sites, so that matching stays fast) and a
ranking, four numbers over the top ``k`` hits (the query itself left out):

- structure-type P@k: share of hits with the query's structure type
- shares-an-element P@k: share of hits with at least one of the query's elements
- analogue P@k: both at once (isostructural analogues with related chemistry)
- same element set P@k: share with exactly the query's elements

Two catalogs, in one run: the whole index (``--by`` modes of :mod:`crystalsearch.catalog.scoring`), and
a seeded subset of ``subset`` materials where every ranking is computed, including the Materials
Project's similarity fingerprint (matminer ``SiteStatsFingerprint`` of ``CrystalNNFingerprint``,
Euclidean), Magpie composition features (standardised, Euclidean) and the best possible (every match
of the same space group and primitive size found by scanning them all).

Polytypes: queries whose reduced formula exists in the catalog in two or more structure types; a query
passes when a material of its own structure type (any formula) ranks above every polytype (same formula,
other structure type) — zincblende GaAs must find zincblende analogues before wurtzite GaAs.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.identity.catalog import Catalog

__all__ = ["StructureEvalConfig", "VerdictCache", "evaluate_structure_retrieval"]

METRICS = ("structure_type", "shares_element", "analogue", "same_element_set")


@dataclass(frozen=True)
class StructureEvalConfig:
    n_queries: int = 300
    seed: int = 0
    k: int = 10
    max_sites: int = 40
    subset: int = 1500
    polytype_queries: int = 200
    polytype_depth: int = 100
    modes: tuple[str, ...] = ("structure", "both", "chemistry")
    baselines: tuple[str, ...] = ("mp_fingerprint", "magpie")


class VerdictCache:
    """Framework-matcher verdicts by (material id, material id), appended to a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known: dict[tuple[str, str], bool] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    a, b, v = json.loads(line)
                except ValueError:
                    continue  # a torn last line
                self.known[(a, b)] = bool(v)
        self._matcher: Any = None
        self.computed = 0

    def _match(self, s1: Structure, s2: Structure) -> bool:
        if self._matcher is None:
            from pymatgen.analysis.structure_matcher import FrameworkComparator, StructureMatcher

            self._matcher = StructureMatcher(comparator=FrameworkComparator(), primitive_cell=True, scale=True,
                                             attempt_supercell=False)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return bool(self._matcher.fit(s1, s2))
            except (ValueError, ArithmeticError):
                return False

    def same_type(self, a: str, b: str, structure: Callable[[str], Structure]) -> bool:
        key = (a, b) if a <= b else (b, a)
        found = self.known.get(key)
        if found is None:
            found = self._match(structure(a), structure(b))
            self.known[key] = found
            self.computed += 1
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write(json.dumps([key[0], key[1], found]) + "\n")
        return found


@dataclass
class _Meta:
    """What the metrics need of every catalog material: id, element set, formula, space group, size."""

    ids: list[str]
    elements: list[frozenset[str]]
    formula: list[str]
    spacegroup: np.ndarray
    nsites: np.ndarray
    prototype: list[str] = field(default_factory=list)
    row_of: dict[str, int] = field(default_factory=dict)


def _meta(catalog: Catalog) -> _Meta:
    rows = catalog.db.materials(list(range(len(catalog))))
    ids = [rows[i].material_id for i in range(len(catalog))]
    meta = _Meta(
        ids=ids,
        elements=[frozenset(rows[i].chemsys.split("-")) for i in range(len(catalog))],
        formula=[rows[i].reduced_formula for i in range(len(catalog))],
        spacegroup=np.array([rows[i].spacegroup_number for i in range(len(catalog))]),
        nsites=np.array([rows[i].nsites for i in range(len(catalog))]),
        prototype=[rows[i].prototype or "" for i in range(len(catalog))],
    )
    meta.row_of = {m: i for i, m in enumerate(ids)}
    return meta


def _precisions(q: int, hits: Sequence[int], meta: _Meta, same: Callable[[int, int], bool]) -> dict[str, float]:
    n = max(len(hits), 1)
    st = [same(q, h) for h in hits]
    el = [bool(meta.elements[q] & meta.elements[h]) for h in hits]
    return {
        "structure_type": sum(st) / n,
        "shares_element": sum(el) / n,
        "analogue": sum(a and b for a, b in zip(st, el)) / n,
        "same_element_set": sum(meta.elements[q] == meta.elements[h] for h in hits) / n,
    }


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {m: float(np.mean([r[m] for r in rows])) if rows else float("nan") for m in METRICS}


def _euclidean_top(x: np.ndarray, q: int, rows: np.ndarray, k: int) -> list[int]:
    d = np.linalg.norm(x[rows] - x[q], axis=1)
    d[~np.isfinite(d)] = np.inf
    d[rows == q] = np.inf
    order = np.lexsort((rows, d))[:k]
    return [int(rows[i]) for i in order]


@dataclass
class StructureEvalReport:
    config: StructureEvalConfig
    index_size: int
    encoder: str
    full: dict[str, dict[str, float]]
    subset: dict[str, dict[str, float]]
    subset_size: int
    polytypes: dict[str, float]
    polytype_queries: int
    classic_polytypes: dict[str, float]
    classic_queries: list[str]
    textbook: list[dict[str, Any]]
    verdicts_computed: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _structure_getter(catalog: Catalog) -> Callable[[str], Structure]:
    cache: dict[str, Structure] = {}

    def get(material_id: str) -> Structure:
        if material_id not in cache:
            cache[material_id] = catalog.structure(material_id)
        return cache[material_id]

    return get


def evaluate_structure_retrieval(
    catalog: Catalog,
    *,
    config: StructureEvalConfig = StructureEvalConfig(),
    verdicts: VerdictCache,
    progress: Callable[[str], None] = lambda message: None,
) -> StructureEvalReport:
    """All numbers of the module docstring for ``catalog`` (see :class:`StructureEvalConfig`)."""
    import time

    start = time.perf_counter()
    meta = _meta(catalog)
    get = _structure_getter(catalog)

    def same(a: int, b: int) -> bool:
        return verdicts.same_type(meta.ids[a], meta.ids[b], get)

    rng = np.random.default_rng(config.seed)
    eligible = np.flatnonzero(meta.nsites <= config.max_sites)
    queries = np.sort(rng.choice(eligible, size=min(config.n_queries, eligible.size), replace=False))
    # 1. the whole catalog, every --by mode
    full: dict[str, dict[str, float]] = {}
    for mode in config.modes:
        progress(f"whole catalog, --by {mode}")
        rows = [_precisions(int(q), [s.row for s in catalog.ranked(meta.ids[q], k=config.k, by=mode)], meta, same)
                for q in queries]  # fmt: skip
        full[mode] = _mean(rows)
    # 2. a seeded subset: every ranking, the baselines and the best possible
    sub_rows = subset_rows(len(meta.ids), config)
    sub_queries = [int(q) for q in sub_rows if meta.nsites[q] <= config.max_sites][: config.n_queries]
    subset = _subset_rankings(catalog, meta, sub_rows, sub_queries, config, same, progress)
    # 3. polytypes, on the whole catalog
    progress("polytypes")
    poly_queries = _polytype_queries(meta, config)
    polytypes = {mode: _polytype_score(catalog, meta, poly_queries, mode, config, same) for mode in config.modes}
    classic = _classic_queries(meta)
    classic_scores = {mode: _polytype_score(catalog, meta, classic, mode, config, same) for mode in config.modes}
    # 4. textbook structures built from scratch
    progress("textbook structures")
    textbook = _textbook(catalog, verdicts, config)
    return StructureEvalReport(
        config=config, index_size=len(catalog), encoder=catalog.manifest.encoder.hash, full=full, subset=subset,
        subset_size=int(sub_rows.size), polytypes=polytypes, polytype_queries=len(poly_queries),
        classic_polytypes=classic_scores, classic_queries=[f"{meta.ids[q]} {meta.formula[q]}" for q in classic],
        textbook=textbook,
        verdicts_computed=verdicts.computed, seconds=round(time.perf_counter() - start, 1),
    )  # fmt: skip


def subset_rows(n: int, config: StructureEvalConfig) -> np.ndarray:
    """The seeded subset of catalog rows where every ranking is compared: the first ``subset`` (by row) of a
    fixed seeded sample of 5,000, so that a smaller subset reuses the cached fingerprints of a larger one."""
    pool = np.sort(np.random.default_rng(config.seed).choice(n, size=min(5000, n), replace=False))
    return pool[: config.subset]


def _subset_rankings(
    catalog: Catalog,
    meta: _Meta,
    rows: np.ndarray,
    queries: list[int],
    config: StructureEvalConfig,
    same: Callable[[int, int], bool],
    progress: Callable[[str], None],
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for mode in config.modes:
        progress(f"subset, --by {mode}")
        out[mode] = _mean([
            _precisions(q, [s.row for s in catalog.ranked(meta.ids[q], k=config.k, by=mode, allowed=rows)], meta, same)
            for q in queries
        ])  # fmt: skip
    features = _baseline_features(catalog, meta, rows, config, progress)
    for name, x in features.items():
        progress(f"subset, {name}")
        full_x = np.full((len(meta.ids), x.shape[1]), np.nan)
        full_x[rows] = x
        out[name] = _mean([_precisions(q, _euclidean_top(full_x, q, rows, config.k), meta, same) for q in queries])
    progress("subset, best possible")
    out["best_possible"] = _best_possible(catalog, meta, rows, queries, config, same)
    return out


def _baseline_features(
    catalog: Catalog, meta: _Meta, rows: np.ndarray, config: StructureEvalConfig, progress: Callable[[str], None]
) -> dict[str, np.ndarray]:
    """MP fingerprint and Magpie features of the subset (matminer, cached by evaluate.fingerprints)."""
    from crystalsearch.data import datasets
    from crystalsearch.structure.descriptors import fingerprints

    by_id = {r.material_id: r for name in ("mp2025", "mp_elasticity") for r in datasets.load(name).records}
    records = [by_id[meta.ids[r]] for r in rows]
    out = {}
    for name, key in (("mp_fingerprint", "sitestats"), ("magpie", "magpie")):
        if name in config.baselines:
            progress(f"features: {name}")
            x = np.asarray(fingerprints(records, key), dtype=np.float64)
            if name == "magpie":
                x = (x - np.nanmean(x, axis=0)) / np.where(np.nanstd(x, axis=0) > 0, np.nanstd(x, axis=0), 1.0)
            out[name] = x
    return out


def _primitive_sizes(catalog: Catalog, meta: _Meta, rows: np.ndarray) -> dict[int, int]:
    import spglib

    out = {}
    get = _structure_getter(catalog)
    for r in rows:
        s = get(meta.ids[r])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cell = (s.lattice.matrix, s.frac_coords, list(s.atomic_numbers))
            prim = spglib.find_primitive(cell, symprec=0.1)  # type: ignore[arg-type]
        out[int(r)] = len(prim[2]) if prim is not None else len(s)
    return out


def _best_possible(
    catalog: Catalog,
    meta: _Meta,
    rows: np.ndarray,
    queries: list[int],
    config: StructureEvalConfig,
    same: Callable[[int, int], bool],
) -> dict[str, float]:
    """P@k of an oracle that scans every subset material of the query's space group and primitive size."""
    prim = _primitive_sizes(catalog, meta, rows)
    by_key: dict[tuple[int, int], list[int]] = {}
    for r in rows:
        by_key.setdefault((int(meta.spacegroup[r]), prim[int(r)]), []).append(int(r))
    found = []
    for q in queries:
        matches = [r for r in by_key[(int(meta.spacegroup[q]), prim[q])] if r != q and same(q, r)]
        found.append(min(len(matches), config.k) / config.k)
    return {"structure_type": float(np.mean(found))}


def _polytype_queries(meta: _Meta, config: StructureEvalConfig) -> list[int]:
    """Materials whose reduced formula appears with two or more space groups in the catalog (seeded sample)."""
    groups: dict[str, set[int]] = {}
    for f, sg in zip(meta.formula, meta.spacegroup):
        groups.setdefault(f, set()).add(int(sg))
    eligible = [i for i, f in enumerate(meta.formula) if len(groups[f]) >= 2 and meta.nsites[i] <= config.max_sites]
    rng = np.random.default_rng(config.seed + 2)
    chosen = rng.choice(len(eligible), size=min(config.polytype_queries, len(eligible)), replace=False)
    return sorted(eligible[i] for i in chosen)


# Textbook polytype pairs, by prototype label: zincblende/wurtzite, diamond/lonsdaleite, rutile/anatase.
CLASSIC_PAIRS = (
    ("AB_cF8_216_-43m_-43m", "AB_hP4_186_3m._3m."),
    ("A_cF8_227_-43m", "A_hP4_194_3m."),
    ("AB2_tP6_136_m.mm_m.2m", "AB2_tI12_141_-4m2_2mm."),
)


def _classic_queries(meta: _Meta) -> list[int]:
    """Every material of a formula that exists in both structure types of a textbook polytype pair."""
    out: list[int] = []
    for a, b in CLASSIC_PAIRS:
        fa = {meta.formula[i] for i, p in enumerate(meta.prototype) if p == a}
        fb = {meta.formula[i] for i, p in enumerate(meta.prototype) if p == b}
        both = fa & fb
        out += [i for i, p in enumerate(meta.prototype) if p in (a, b) and meta.formula[i] in both]
    return sorted(set(out))


def _polytype_score(
    catalog: Catalog,
    meta: _Meta,
    queries: list[int],
    mode: str,
    config: StructureEvalConfig,
    same: Callable[[int, int], bool],
) -> float:
    formula_rows: dict[str, list[int]] = {}
    for i, f in enumerate(meta.formula):
        formula_rows.setdefault(f, []).append(i)
    passed, counted = 0, 0
    for q in queries:
        polytypes = {r for r in formula_rows[meta.formula[q]] if r != q and not same(q, r)}
        if not polytypes:
            continue  # every same-formula material is of the query's type: nothing to tell apart
        counted += 1
        for s in catalog.ranked(meta.ids[q], k=config.polytype_depth, by=mode):
            if s.row in polytypes:
                break
            if same(q, s.row):
                passed += 1
                break
    return passed / counted if counted else float("nan")


def _textbook(catalog: Catalog, verdicts: VerdictCache, config: StructureEvalConfig) -> list[dict[str, Any]]:
    from crystalsearch.catalog.results import QueryResult
    from crystalsearch.evaluate.textbook import textbook_structures

    out = []
    get = _structure_getter(catalog)
    for name, structure in textbook_structures().items():
        (result,) = catalog.search([structure], k=config.k, by="both")
        assert isinstance(result, QueryResult)  # noqa: S101 - an invariant that narrows the type, not an input check
        hits = [h.material_id for h in result.hits]
        n_same = sum(verdicts._match(structure, get(m)) for m in hits)
        out.append({"structure": name, "same_type_in_top_k": n_same, "k": config.k, "top3": hits[:3]})
    return out
