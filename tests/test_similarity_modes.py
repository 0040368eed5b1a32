"""Similarity by structure, chemistry or both: the fingerprint's invariances, the scoring rule against a
manual reference, and rankings on a small index of real 2025 MP structures with known structure types."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from crystalsearch.catalog.build import build_index
from crystalsearch.catalog.scoring import BOTH_WEIGHT, PROTOTYPE_SHARE, Ranking, default_weight, rank
from crystalsearch.data import datasets
from crystalsearch.data.entries import merge_records
from crystalsearch.identity.catalog import Catalog
from crystalsearch.model.embed import Encoder
from crystalsearch.structure.fingerprint import DIM, fingerprint, fingerprints

ROCKSALT = ["mp-22862", "mp-23193", "mp-1138", "mp-1265"]
ZINCBLENDE = ["mp-2534", "mp-2490", "mp-20305", "mp-10695"]
WURTZITE = ["mp-8883", "mp-2133", "mp-804", "mp-560588"]
DIAMOND = ["mp-149", "mp-32", "mp-66"]
PEROVSKITE = ["mp-5229", "mp-2998"]


def _zincblende(a: float = 5.65) -> Structure:
    return Structure.from_spacegroup("F-43m", Lattice.cubic(a), ["Ga", "As"], [[0, 0, 0], [0.25, 0.25, 0.25]])


def _wurtzite() -> Structure:
    lat = Lattice.hexagonal(3.99, 6.52)
    return Structure.from_spacegroup("P6_3mc", lat, ["Ga", "As"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.375]])


def _fp(s: Structure) -> np.ndarray:
    return fingerprint(s.lattice.matrix, s.frac_coords)


# --- the fingerprint -------------------------------------------------------------------------------------
def test_fingerprint_invariant_to_cell_choice_orientation_and_scale(nacl: Structure) -> None:
    ref = _fp(nacl)
    assert ref.shape == (DIM,) and abs(float(np.linalg.norm(ref)) - 1.0) < 1e-5
    turn = np.array([[0.0, 0.8, 0.6], [-1.0, 0.0, 0.0], [0.0, -0.6, 0.8]])  # a proper rotation
    rotated = Structure(Lattice(nacl.lattice.matrix @ turn.T), nacl.species, nacl.frac_coords)
    shifted = nacl.copy()
    shifted.translate_sites(range(len(nacl)), [0.13, 0.27, 0.61])
    scaled = nacl.copy()
    scaled.scale_lattice(nacl.volume * 1.37)
    kcl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(6.29), ["K", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    for variant in (nacl.get_primitive_structure(), nacl * (2, 1, 3), rotated, shifted, scaled, kcl):
        assert float(_fp(variant) @ ref) == pytest.approx(1.0, abs=1e-5)


def test_fingerprint_tells_polytypes_apart_and_ignores_species() -> None:
    zb, wz = _fp(_zincblende()), _fp(_wurtzite())
    diamond = Structure.from_spacegroup("F-43m", Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25] * 3])
    assert float(zb @ _fp(diamond)) == pytest.approx(1.0, abs=1e-5)  # same framework, other species
    assert float(zb @ wz) < 0.99  # third shell and second-shell angles differ
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    assert float(zb @ _fp(rocksalt)) < 0.5 < float(zb @ wz)
    batch = fingerprints([(s.lattice.matrix, s.frac_coords) for s in (_zincblende(), _wurtzite())])
    np.testing.assert_allclose(batch, np.stack([zb, wz]), atol=1e-6)


# --- the scoring rule ------------------------------------------------------------------------------------
def test_rank_matches_a_manual_reference() -> None:
    rng = np.random.default_rng(3)
    h, s = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    vectors = np.hstack([h, s]).astype(np.float32)
    ranking = Ranking(0.7, 4, 3)
    same = np.array([2, 5])
    got = rank(lambda ids: vectors[ids], ranking, h[0], s[0], np.array([1, 2, 3, 4]), same_prototype=same, k=6)
    assert [x.row for x in got] == sorted({1, 2, 3, 4, 5}, key=lambda r: -got[[x.row for x in got].index(r)].score)
    for x in got:  # every score by hand: w * ((1 - b) cos_s + b [same]) + (1 - w) cos_h
        struct = (1 - PROTOTYPE_SHARE) * float(s[x.row] @ s[0]) + PROTOTYPE_SHARE * (x.row in same)
        assert x.structure == pytest.approx(struct, abs=1e-6)
        assert x.chemistry == pytest.approx(float(h[x.row] @ h[0]), abs=1e-6)
        assert x.score == pytest.approx(0.7 * struct + 0.3 * x.chemistry, abs=1e-6)
    assert [x.score for x in got] == sorted((x.score for x in got), reverse=True)
    # the FAISS query vector gives every score except the bonus
    q = ranking.query(h[0], s[0])
    for x in got:
        assert float(vectors[x.row] @ q) + ranking.bonus * (x.row in same) == pytest.approx(x.score, abs=1e-6)
    assert default_weight("structure") == 1.0 and default_weight("chemistry") == 0.0
    assert default_weight("both") == BOTH_WEIGHT
    with pytest.raises(ValueError, match="--by"):
        default_weight("shape")


# --- rankings on real structures ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def typed_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    os.environ.setdefault("CRYSTALSEARCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    records = datasets.load("mp2025").records
    wanted = set(ROCKSALT + ZINCBLENDE + WURTZITE + DIAMOND + PEROVSKITE)
    chosen = [r for r in records if r.material_id in wanted] + [r for r in records[:4000:40] if r.num_sites <= 24]
    out: Path = tmp_path_factory.mktemp("typed") / "index"
    build_index(merge_records([("mp2025", chosen)]), encoder=Encoder.random(seed=0), out=out, progress=False)
    return Catalog.open(out)


def test_structure_mode_puts_the_query_type_first_and_polytypes_after(typed_catalog: Catalog) -> None:
    hits = typed_catalog.similar(_zincblende(5.9), k=7, by="structure")
    ids = [h.material_id for h in hits]
    assert set(ids[:4]) == set(ZINCBLENDE)  # same prototype label: every zincblende first
    assert set(ids[4:7]) == set(DIAMOND)  # then the same framework with one species (fingerprint 1.0)
    all_hits = [h.material_id for h in typed_catalog.similar(_zincblende(), k=40, by="structure")]
    assert max(all_hits.index(m) for m in ZINCBLENDE + DIAMOND) < min(all_hits.index(m) for m in WURTZITE)
    top = hits[0]
    assert top.prototype == "AB_cF8_216_-43m_-43m" and top.structure_similarity == pytest.approx(1.0, abs=1e-4)
    assert top.similarity == pytest.approx(top.structure_similarity, abs=1e-6)  # w = 1


def test_indexed_queries_find_their_analogues_in_every_mode(typed_catalog: Catalog) -> None:
    hits = typed_catalog.similar("mp-22862", k=3, by="structure")
    assert {h.material_id for h in hits} == set(ROCKSALT) - {"mp-22862"}
    both = typed_catalog.similar("mp-8883", k=10, by="both")
    assert [h.similarity for h in both] == sorted((h.similarity for h in both), reverse=True)
    for h in both:
        assert h.similarity == pytest.approx(BOTH_WEIGHT * h.structure_similarity + (1 - BOTH_WEIGHT)
                                             * h.chemistry_similarity, abs=1e-5)  # fmt: skip
    assert set(WURTZITE) - {"mp-8883"} <= {h.material_id for h in both[:3]}


def test_chemistry_mode_is_the_encoder_cosine(typed_catalog: Catalog) -> None:
    row = typed_catalog.row_of("mp-2534")
    assert row is not None
    vectors = typed_catalog.vectors.vectors()
    h = vectors[:, : typed_catalog.chem_dim]
    cos = h @ h[row]
    order = [int(i) for i in np.lexsort((np.arange(len(cos)), -cos)) if i != row][:8]
    hits = typed_catalog.similar("mp-2534", k=8, by="chemistry")
    assert [typed_catalog.row_of(x.material_id) for x in hits] == order
    same = typed_catalog.similar("mp-2534", k=8, by="both", weight=0.0)
    assert [x.material_id for x in same] == [x.material_id for x in hits]
    with pytest.raises(Exception, match="--weight"):
        typed_catalog.similar("mp-2534", k=3, weight=1.5)


def test_cli_by_modes_and_prototype_filters(typed_catalog: Catalog) -> None:
    import json

    from typer.testing import CliRunner

    from crystalsearch.cli import app

    run = CliRunner().invoke
    index = str(typed_catalog.path)
    res = run(app, ["similar", "mp-2534", "--index", index, "-k", "3", "--by", "structure", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    hits = doc["results"][0]["hits"]
    assert doc["by"] == "structure" and {h["material_id"] for h in hits} == set(ZINCBLENDE) - {"mp-2534"}
    assert all(h["prototype"] == "AB_cF8_216_-43m_-43m" and h["structure_similarity"] >= 0.99 for h in hits)
    assert "structure_similarity" in doc["units"]
    res = run(app, ["similar", "mp-8883", "--index", index, "-k", "10", "--same-prototype", "--json"])
    ids = {h["material_id"] for h in json.loads(res.stdout)["results"][0]["hits"]}
    assert ids == set(WURTZITE) - {"mp-8883"}  # only its own structure type, however many were asked for
    label = "AB_cF8_225_m-3m_m-3m"
    res = run(app, ["similar", "mp-2534", "--index", index, "-k", "50", "--prototype", label, "--json"])
    hits = json.loads(res.stdout)["results"][0]["hits"]
    assert set(ROCKSALT) <= {h["material_id"] for h in hits} and {h["prototype"] for h in hits} == {label}
    bad = run(app, ["similar", "mp-2534", "--index", index, "--by", "shape"])
    assert bad.exit_code == 2 and "--by" in bad.output and "Traceback" not in bad.output
