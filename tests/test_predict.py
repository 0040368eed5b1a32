"""Property prediction: shipped heads, evidence neighbours, fine-tuning checkpoints, CLI JSON shape."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crystalsearch.cli import app
from crystalsearch.data import datasets
from crystalsearch.io import read_structure
from crystalsearch.predict.predictor import Predictor, available_properties

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """An index of 300 mp_elasticity materials (plus NaCl, Si) built with the shipped default encoder."""
    from crystalsearch.catalog.build import build_index
    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.model.embed import Encoder

    ds = datasets.load("mp_elasticity")
    wanted = {"mp-22862", "mp-149"}
    records = [r for r in ds.records if r.material_id in wanted] + list(ds.records[:300])
    out = tmp_path_factory.mktemp("index") / "idx"
    enc = Encoder.load("default")
    build_index(records, encoder=enc, out=out, progress=False)
    return Catalog.open(out, encoder=enc, progress=False)


def test_shipped_heads_present() -> None:
    assert {"bulk_modulus", "shear_modulus", "formation_energy", "band_gap"} <= set(available_properties())


def test_ensemble_prediction_is_plausible() -> None:
    pred = Predictor.load("bulk_modulus")
    assert len(pred.members) >= 2
    structures = [read_structure(EXAMPLES / "NaCl.cif"), read_structure(EXAMPLES / "Si.cif")]
    values = pred.predict_values(structures)
    assert values.shape == (len(pred.members), 2)
    mean = values.mean(axis=0)
    # DFT K_VRH: NaCl 23.8 GPa, Si 88.9 GPa (both in the shipped data); the heads should be in the right range
    assert 10 < mean[0] < 45 and 60 < mean[1] < 130
    assert mean[1] > mean[0]


def test_predictions_carry_evidence_with_the_property(small_catalog, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path))
    pred = Predictor.load("bulk_modulus")
    ds = datasets.load("mp_elasticity")
    known = {r.material_id: r.properties["bulk_modulus_vrh"] for r in ds.records}
    results = pred.predict([("NaCl", read_structure(EXAMPLES / "NaCl.cif"))], catalog=small_catalog)
    (r,) = results
    assert r.unit == "GPa" and r.uncertainty > 0 and len(r.members) == len(pred.members)
    assert len(r.neighbors) == 3
    for n in r.neighbors:  # evidence really holds the property, with the dataset's value
        assert math.isclose(n.value, known[n.material_id], rel_tol=1e-9)
    assert r.neighbors[0].material_id == "mp-22862"  # the query itself is indexed: similarity 1
    assert r.neighbors[0].similarity > 0.999
    sims = [n.similarity for n in r.neighbors]
    assert sims == sorted(sims, reverse=True)
    d = r.to_dict()
    assert {"query", "property", "value", "unit", "uncertainty", "neighbors"} <= set(d)


def test_far_query_gets_a_warning(small_catalog, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from pymatgen.core import Lattice, Structure

    from crystalsearch.predict.predictor import heads_dir

    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path))
    legacy = tmp_path / "legacy"  # heads without calibration.json keep the nearest-similarity warning
    for seed in sorted(heads_dir("bulk_modulus").glob("seed*")):
        shutil.copytree(seed, legacy / seed.name)
    pred = Predictor.load("bulk_modulus", folder=legacy)
    assert pred.calibration is None
    # A plutonium-hydrogen-uranium crystal with odd spacing: nothing like the indexed elastic set.
    odd = Structure(Lattice.cubic(7.0), ["Pu", "U", "H", "H"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0, 0], [0, 0.25, 0]])
    near = read_structure(EXAMPLES / "Si.cif")
    far_r, near_r = pred.predict([("odd", odd), ("Si", near)], catalog=small_catalog)
    assert near_r.warning is None
    assert far_r.nearest_similarity is not None and near_r.nearest_similarity is not None
    assert far_r.nearest_similarity < near_r.nearest_similarity
    threshold = pred.similarity_threshold(small_catalog)
    assert threshold is not None
    assert (far_r.warning is not None) == (far_r.nearest_similarity < threshold)


def test_target_transform_round_trip_and_legacy_metadata() -> None:
    from crystalsearch.train.finetune import TargetTransform

    y = datasets.load("mp_elasticity").targets("bulk_modulus_vrh")[:500]
    tr = TargetTransform.fit(y, log=True)
    again = TargetTransform.from_dict(json.loads(json.dumps(tr.to_dict())))
    assert again == tr
    np.testing.assert_allclose(again.inverse(tr.forward(y)), y, rtol=1e-9)
    assert again.inverse(np.array([1e6]))[0] == pytest.approx(np.exp(tr.hi * tr.std + tr.mean))  # clipped
    legacy = TargetTransform.from_dict({"log": True, "mean": tr.mean, "std": tr.std})  # before lo/hi were stored
    assert legacy.lo == -np.inf and legacy.hi == np.inf


def test_finetune_writes_a_loadable_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crystalsearch.train.config import FinetuneConfig
    from crystalsearch.train.finetune import finetune, save_finetuned

    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path / "cache"))
    cfg = FinetuneConfig(property="melting_temperature", init="random", lrs=(1e-3, 3e-4), epochs=2, patience=2,
                         batch_size=32, max_structures=120, compile=False)  # fmt: skip
    res = finetune(cfg, show_progress=False)
    assert set(res.lr_grid) == {1e-3, 3e-4} and res.lr == min(res.lr_grid, key=res.lr_grid.__getitem__)
    assert np.isfinite(res.test_mae) and res.n_train + res.n_val + res.n_test == 120
    folder = save_finetuned(res, tmp_path / "heads" / "seed0", cfg, command="test")
    card = (folder / "README.md").read_text()
    assert f"{res.test_mae:.4g}" in card
    pred = Predictor.load("melting_temperature", folder=tmp_path / "heads")
    values = pred.predict_values([read_structure(EXAMPLES / "NaCl.cif")])
    assert values.shape == (1, 1) and np.isfinite(values).all()


def test_cli_predict_json_shape_and_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "broken.cif"
    bad.write_text("data_x\n_cell_length_a 3\n")
    result = CliRunner().invoke(
        app, ["predict", "--property", "band_gap", str(EXAMPLES / "GaAs.cif"), str(bad), "--no-evidence", "--json"]
    )
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["schema_version"] == 1 and payload["units"]["value"] == "eV"
    item, failed = payload["results"]  # the failed query is present too, with its error
    assert item["query"].endswith("GaAs.cif") and item["property"] == "band_gap" and item["unit"] == "eV"
    assert item["value"] >= -0.5 and item["uncertainty"] >= 0 and item["neighbors"] == [] and item["error"] is None
    assert failed["query"] == str(bad) and failed["value"] is None and failed["error"].startswith(str(bad))


def test_cli_unknown_property_is_one_line() -> None:
    result = CliRunner().invoke(app, ["predict", "--property", "colour", str(EXAMPLES / "Si.cif")])
    assert result.exit_code == 2
    assert "unknown property 'colour'" in result.output


def test_cli_predict_says_catalog_value_and_explains_the_spread(small_catalog, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console

    import crystalsearch.cli.predict as cli_predict

    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path))
    args = ["predict", "-p", "bulk_modulus", str(EXAMPLES / "NaCl.cif"), "mp-149", "--index", str(small_catalog.path)]
    strained = read_structure(EXAMPLES / "NaCl.cif")
    strained.apply_strain(0.01)  # a slightly strained copy is still the same material for StructureMatcher
    strained.to(filename=str(tmp_path / "NaCl_strained.cif"))
    result = CliRunner().invoke(app, [*args, str(tmp_path / "NaCl_strained.cif"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    n = payload["ensemble_size"]
    assert "spread" in payload["uncertainty"] and f"{n} seed-ensemble" in payload["uncertainty"]
    nacl, si, nacl_strained = payload["results"]
    assert nacl_strained["catalog_value"] == {"material_id": "mp-22862", "value": 23.8}
    assert nacl["catalog_value"] == {"material_id": "mp-22862", "value": 23.8}  # a file that is an indexed material
    assert si["catalog_value"] == {"material_id": "mp-149", "value": 88.9}  # an indexed id
    for r in (nacl, si):  # the material itself is not its own evidence
        assert len(r["neighbors"]) == 3
        assert r["catalog_value"]["material_id"] not in {n["material_id"] for n in r["neighbors"]}
    out = Console(record=True, width=200, force_terminal=False)
    monkeypatch.setattr(cli_predict, "console", out)
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    result = CliRunner().invoke(app, args)
    text = out.export_text()
    assert "catalog value: 23.8 GPa (mp-22862 is this structure" in text
    assert text.index("catalog value: 23.8 GPa") < text.index("predicted: ")  # the stored value is said first
    assert "90% interval" in text and "split conformal" in text  # the calibrated interval, explained
    assert f"± is the spread (sample standard deviation) of the predictions of the {n} seed-ensemble members" in text
