"""Retrieval of indexed crystals from transformed copies (rotation, translation, supercell exact; noise approximate)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from crystalsearch.catalog.build import build_index
from crystalsearch.data import datasets
from crystalsearch.data.entries import merge_records
from crystalsearch.evaluate.retrieval import KINDS, RetrievalConfig, evaluate_retrieval, ranks_of, transform
from crystalsearch.identity.catalog import Catalog
from crystalsearch.model.embed import Encoder


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    os.environ["CRYSTALSEARCH_CACHE"] = str(tmp_path_factory.mktemp("retrieval-cache"))
    records = datasets.load("mp_structures").records[1000:1300]
    out = tmp_path_factory.mktemp("retrieval") / "idx"
    build_index(merge_records([("mp_structures", records)]), encoder=Encoder.random(seed=0), out=out, progress=False)
    return Catalog.open(out)


def test_invariant_copies_are_found_at_rank_1(catalog: Catalog) -> None:
    report = evaluate_retrieval(catalog, config=RetrievalConfig(n=60, seed=3))
    by_kind = {r.kind: r for r in report.results}
    assert set(by_kind) == set(KINDS) and report.invariants_at_rank_1
    for kind in ("rotation", "translation", "supercell"):
        assert by_kind[kind].recall_at_1 == 1.0 and by_kind[kind].worst_rank == 1 and by_kind[kind].queries == 60
    for kind in ("perturb", "strain"):
        assert 0.0 <= by_kind[kind].recall_at_1 <= by_kind[kind].recall_at_10 <= 1.0


def test_supercell_of_a_real_structure_ranks_first(catalog: Catalog) -> None:
    row = int(catalog.db.ids_where(None)[17])
    material_id = catalog.db.materials([row])[row].material_id
    structure = catalog.structure(material_id)
    copy = structure.copy()
    copy.make_supercell([2, 2, 2])
    copy.translate_sites(list(range(len(copy))), [0.13, 0.27, 0.41])
    hits = catalog.similar(copy, k=3)
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    tied = [h.material_id for h in hits if h.similarity >= hits[0].similarity - 1e-6]
    assert material_id in tied


def test_transforms_preserve_composition_and_density() -> None:
    rng = np.random.default_rng(0)
    rec = datasets.load("mp_structures").records[5]
    cell = (np.array(rec.lattice), np.array(rec.frac_coords), np.array(rec.atomic_numbers))
    cfg = RetrievalConfig()
    for kind in KINDS:
        lat, frac, z = transform(cell, kind, rng, cfg)
        factor = 8 if kind == "supercell" else 1
        assert len(z) == factor * len(cell[2]) and sorted(z) == sorted(np.tile(cell[2], factor))
        vol = abs(np.linalg.det(lat)) / factor
        assert vol == pytest.approx(abs(np.linalg.det(cell[0])), rel=0.2 if kind == "strain" else 1e-9)


def test_ranks_count_ties_in_favour() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert ranks_of(vectors, queries, np.array([1, 0]), tie_tol=1e-6).tolist() == [1, 2]


def test_unknown_kind_rejected(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="unknown query kind"):
        evaluate_retrieval(catalog, config=RetrievalConfig(n=2, kinds=("shear",)))


def test_index_path_is_a_folder(catalog: Catalog) -> None:
    assert isinstance(catalog.path, Path) and (catalog.path / "manifest.json").is_file()
