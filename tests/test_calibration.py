"""The fixed protocol split, seed ensembles trained on it, conformal intervals and the OOD flag."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crystalsearch.cli import app
from crystalsearch.data import datasets
from crystalsearch.io import read_structure
from crystalsearch.predict.conformal import Calibration
from crystalsearch.train.protocol import PARTS, protocol_split

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def test_protocol_split_is_fixed_disjoint_labelled_and_keeps_formulas_together() -> None:
    split = protocol_split("melting_temperature")
    again = protocol_split("melting_temperature")
    ds = datasets.load("melting_temperature")
    y = ds.targets("melting_temperature")
    parts = [split.part(p) for p in PARTS]
    for a, b in zip(parts, (again.part(p) for p in PARTS), strict=True):
        np.testing.assert_array_equal(a, b)  # fixed: no seed argument can move the test set
    assert sum(len(p) for p in parts) == int(np.isfinite(y).sum())
    assert len(np.unique(np.concatenate(parts))) == sum(len(p) for p in parts)
    formulas = [{ds.records[int(i)].reduced_formula for i in p} for p in parts]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not formulas[i] & formulas[j], (PARTS[i], PARTS[j])  # compositional: polymorphs together
    capped = split.capped(100)
    assert len(capped.train) == 100 and set(capped.train) <= set(split.train)
    for p in ("val", "calib", "test"):
        np.testing.assert_array_equal(capped.part(p), split.part(p))  # a cap never moves the evaluation parts
    assert capped.to_dict()["n_train_full"] == len(split.train)


def test_structural_properties_split_by_material() -> None:
    split = protocol_split("bulk_modulus")
    d = split.to_dict()
    assert not d["by_formula"] and d["dataset"] == "mp_elasticity"
    n = sum(d[f"n_{p}"] for p in PARTS)
    assert abs(d["n_test"] / n - 0.1) < 0.01 and abs(d["n_calib"] / n - 0.1) < 0.01
    assert protocol_split("formation_energy").dataset == "mp2025"  # all labelled catalog materials


def test_ensemble_config_layers_shipped_toml_and_sets() -> None:
    from crystalsearch.errors import InputError
    from crystalsearch.train.ensemble import load_ensemble_config

    fe = load_ensemble_config("formation_energy")
    bulk = load_ensemble_config("bulk_modulus")
    assert bulk.finetune.lrs == (1e-3,) and fe.finetune.lrs == (1e-3,)  # [heads] applies to every property
    # [heads.<property>] overrides [heads]
    melting = load_ensemble_config("melting_temperature")
    assert fe.finetune.schedule == "cosine" and melting.finetune.schedule == "constant"
    assert fe.finetune.epochs == 40 and bulk.finetune.epochs == 60 and fe.max_train == 0
    assert melting.finetune.batch_size == 32 and bulk.finetune.batch_size == 128  # [heads] default kept
    assert fe.finetune.property == "formation_energy" and fe.finetune.init == "default"
    full = load_ensemble_config("formation_energy", sets=["max_train=0", "epochs=200", "lrs=1e-3,3e-4"])
    assert full.max_train == 0 and full.finetune.epochs == 200 and full.finetune.lrs == (1e-3, 3e-4)
    with pytest.raises(InputError, match="colour"):
        load_ensemble_config("bulk_modulus", sets=["colour=red"])


def test_split_conformal_covers_held_out_real_labels() -> None:
    """Members that scatter around real bulk moduli with material-dependent noise: the normalised interval
    calibrated on one half covers ~90% of the other half, and more coverage means wider intervals."""
    y = datasets.load("mp_elasticity").targets("bulk_modulus_vrh")
    y = y[np.isfinite(y) & (y > 1)][:3000]
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.05, 0.5, size=len(y))  # heteroscedastic: some materials much harder than others
    truth_noise = rng.normal(0, scale)
    members = y * np.exp(truth_noise + rng.normal(0, scale, size=(3, len(y))))
    point = members.mean(axis=0)
    half = len(y) // 2
    cal = Calibration.fit(prop="bulk_modulus", log=True, score="normalised", point=point[:half],
                          members=members[:, :half], y=y[:half])  # fmt: skip
    lo, hi = cal.interval(point[half:], members[:, half:], 0.9)
    coverage = np.mean((y[half:] >= lo) & (y[half:] <= hi))
    assert 0.87 <= coverage <= 0.93
    lo80, hi80 = cal.interval(point[half:], members[:, half:], 0.8)
    assert np.all(hi80 - lo80 <= hi - lo) and np.all(lo > 0)  # log space: moduli bounds stay positive
    tiny = Calibration.fit(prop="bulk_modulus", log=True, score="absolute", point=point[:5], members=members[:, :5],
                           y=y[:5])  # fmt: skip
    assert tiny.quantile(0.9) == np.inf  # 5 calibration points cannot back a 90% interval
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again.quantile(0.9) == pytest.approx(cal.quantile(0.9), rel=1e-5)
    # the procedure's coverage over re-splits: near nominal on average, spread wide for a few dozen materials
    from crystalsearch.predict.calibration import resplit_coverage

    few = resplit_coverage(cal, point=point[:87], members=members[:, :87], y=y[:87], n_calib=44, coverage=0.9)
    many = resplit_coverage(cal, point=point, members=members, y=y, n_calib=half, coverage=0.9, repeats=50)
    assert 0.87 <= few["mean"] <= 0.95 and 0.88 <= many["mean"] <= 0.92
    assert few["p95"] - few["p05"] > 2 * (many["p95"] - many["p05"]) > 0


def test_ood_flag_follows_the_spread_in_units_and_old_calibrations_keep_theirs() -> None:
    """Log-space heads: equal relative scatter everywhere, so the spread in units (what the flag now
    thresholds) picks the stiff materials, whose errors in GPa are the large ones; a calibration written
    before (``ood = "spread"``) still thresholds the log-space spread."""
    y = datasets.load("mp_elasticity").targets("bulk_modulus_vrh")
    y = y[np.isfinite(y) & (y > 1)][:3000]
    rng = np.random.default_rng(1)
    members = y * np.exp(rng.normal(0, 0.2, size=(3, len(y))))
    half = len(y) // 2
    cal = Calibration.fit(prop="bulk_modulus", log=True, score="absolute", point=members[:, :half].mean(0),
                          members=members[:, :half], y=y[:half])  # fmt: skip
    assert cal.ood == "spread_units"
    flag = cal.out_of_distribution(members[:, half:])
    err = np.abs(members[:, half:].mean(0) - y[half:])
    assert 0.05 <= flag.mean() <= 0.15 and err[flag].mean() > 1.5 * err[~flag].mean()
    assert np.median(y[half:][flag]) > 2 * np.median(y[half:])
    old = Calibration.from_dict({**cal.to_dict(), "ood": "spread", "ood_threshold": 0.3})
    np.testing.assert_array_equal(old.out_of_distribution(members), cal.spread(members) > 0.3)
    with pytest.raises(ValueError, match="ood must be"):
        Calibration.from_dict({**cal.to_dict(), "ood": "distance"})


@pytest.mark.slow
def test_train_heads_resume_calibrate_and_predict_an_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end on the real melting-temperature data (tiny: 2 seeds, 1 epoch, 60 train records)."""
    from crystalsearch.predict.predictor import Predictor

    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "heads"
    sets = ["--set", "seeds=2", "--set", "max_train=60", "--set", "epochs=1", "--set", "compile=false",
            "--set", "init=random"]  # fmt: skip
    args = ["train", "heads", "-p", "melting_temperature", "--out", str(out), *sets, "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["command"] == "train heads" and payload["split"]["n_train"] == 60
    assert [m["seed"] for m in payload["results"]] == [0, 1]
    meta = json.loads((out / "seed1" / "model.json").read_text())["metadata"]
    assert meta["protocol"]["n_test"] == protocol_split("melting_temperature").to_dict()["n_test"]
    again = json.loads(CliRunner().invoke(app, args).stdout)  # resumable: finished seeds are kept
    assert all(m.get("resumed") for m in again["results"])

    cal_args = ["evaluate", "calibration", "-p", "melting_temperature", "--heads", str(out), "--fit", "--out",
                str(tmp_path / "results"), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, cal_args)
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["schema_version"] == 1 and envelope["command"] == "evaluate calibration"
    (res,) = envelope["results"]
    assert (tmp_path / "results" / "report.md").is_file() and (out / "calibration.json").is_file()
    assert (out / "manifest.json").is_file() and not list(out.glob("*.pkl"))  # checksums recorded, no pickle
    assert res["split"]["n_train"] == 60 and res["mae"]["rf_magpie"] > 0
    assert 0 <= res["intervals"]["normalised"]["coverage"] <= 1 and 0 <= res["stack_weight"] <= 1
    assert {"spread", "similarity_p1", "similarity_p10"} <= set(res["ood"])
    assert res["coverage_resplits"]["repeats"] == 200 and 0 <= res["coverage_resplits"]["mean"] <= 1
    assert "test split" in (out / "README.md").read_text()
    pred = Predictor.load("melting_temperature", folder=out)
    assert pred.calibration is not None
    nacl = read_structure(EXAMPLES / "NaCl.cif")
    (p90,) = pred.predict([("NaCl", nacl)], coverage=0.9)
    (p50,) = pred.predict([("NaCl", nacl)], coverage=0.5)
    assert p90.interval is not None and p50.interval is not None and p90.coverage == 0.9
    assert p90.interval[0] <= p50.interval[0] <= p50.interval[1] <= p90.interval[1]
    assert p90.interval[0] <= p90.value <= p90.interval[1]


def test_warm_start_continues_each_member_and_refuses_other_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--set warm_start=DIR`: member k starts from DIR/seed<k> (encoder and head); at lr 0 its weights stay."""
    import torch

    from crystalsearch.predict.predictor import Predictor
    from crystalsearch.structure.graph.batch import GraphBatch
    from crystalsearch.train.finetune import TargetTransform, warm_model

    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path / "cache"))
    base = ["train", "heads", "-p", "melting_temperature", "--set", "max_train=60", "--set", "epochs=1",
            "--set", "compile=false", "--set", "init=random", "--set", "seeds=2", "--json"]  # fmt: skip
    src, out = tmp_path / "src", tmp_path / "warm"
    assert CliRunner().invoke(app, [*base, "--out", str(src)]).exit_code == 0
    result = CliRunner().invoke(app, [*base, "--out", str(out), "--set", f"warm_start={src}", "--set", "lrs=0",
                                      "--set", "loss=l1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    before, after = Predictor.load("melting_temperature", folder=src), Predictor.load("melting_temperature", folder=out)
    for a, b in zip(before.members, after.members, strict=True):
        for (name, p), q in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
            assert torch.equal(p, q), name
    assert not torch.equal(next(before.members[0].model.parameters()), next(before.members[1].model.parameters()))
    meta = json.loads((out / "seed1" / "model.json").read_text())["metadata"]["finetune"]
    assert meta["warm_start"] == str(src) and meta["loss"] == "l1"
    (stage,) = json.loads((out / "seed1" / "model.json").read_text())["metadata"]["history"]
    first = json.loads((src / "seed1" / "model.json").read_text())["metadata"]
    assert stage["epochs_run"] == first["epochs_run"] == 1 and stage["test_mae"] == first["test_mae"]
    assert "Earlier stages" in (out / "seed1" / "README.md").read_text()
    # revised labels or another train cap: other standardisation, so the head is rescaled (same values)
    ref = before.members[0]
    shifted = TargetTransform(log=False, mean=ref.transform.mean + 100.0, std=ref.transform.std * 1.5)
    moved = warm_model(src, seed=0, transform=shifted, graph=before.graph).eval()
    batch = GraphBatch.from_graphs(before.graph.graphs([read_structure(EXAMPLES / "NaCl.cif")]))
    with torch.no_grad():
        za, zb = ref.model(batch).numpy(), moved(batch).numpy()
    assert not np.allclose(za, zb)
    np.testing.assert_allclose(zb * shifted.std + shifted.mean, za * ref.transform.std + ref.transform.mean,
                               rtol=1e-5)  # fmt: skip
    # a source trained under another split may have seen this run's test materials: refused
    card = src / "seed0" / "model.json"
    info = json.loads(card.read_text())
    info["metadata"]["protocol"]["seed"] += 1
    card.write_text(json.dumps(info))
    other = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "bad"), "--set", f"warm_start={src}"])
    assert other.exit_code != 0 and "Traceback" not in other.output
    assert "another split" in other.output and "seed0" in other.output


def test_heads_without_calibration_still_load_and_predict(tmp_path: Path) -> None:
    from crystalsearch.predict.predictor import Predictor, heads_dir

    legacy = tmp_path / "bulk_modulus"
    for seed in sorted(heads_dir("bulk_modulus").glob("seed*")):
        shutil.copytree(seed, legacy / seed.name)  # members only: no calibration.json, no composition model
    pred = Predictor.load("bulk_modulus", folder=legacy)
    assert pred.calibration is None
    (p,) = pred.predict([("Si", read_structure(EXAMPLES / "Si.cif"))])
    assert p.interval is None and p.coverage is None and p.value == pytest.approx(np.mean(p.members))


def test_cli_predict_gives_the_calibrated_interval_and_keeps_the_spread() -> None:
    args = ["predict", "-p", "bulk_modulus", str(EXAMPLES / "NaCl.cif"), str(EXAMPLES / "Si.cif"), "--no-evidence",
            "--json"]  # fmt: skip
    wide = json.loads(CliRunner().invoke(app, [*args, "--coverage", "0.95"]).stdout)
    narrow = json.loads(CliRunner().invoke(app, [*args, "--coverage", "0.5"]).stdout)
    assert wide["coverage"] == 0.95 and "spread" in wide["uncertainty"] and "conformal" in wide["interval"]
    assert wide["units"]["interval"] == "GPa"
    for w, n in zip(wide["results"], narrow["results"], strict=True):
        assert w["coverage"] == 0.95 and n["coverage"] == 0.5 and w["uncertainty"] > 0
        lo, hi = w["interval"]
        assert lo <= n["interval"][0] <= w["value"] <= n["interval"][1] <= hi
    nacl, si = wide["results"]
    assert nacl["interval"][1] < si["interval"][1]  # NaCl (23.8 GPa DFT) is far softer than Si (88.9 GPa)


def test_point_predictions_keep_to_the_labels_floor(mp_sample) -> None:
    """Real labels: band gaps are never negative, so predictions are raised to 0; formation energies (negative
    labels) and log-space properties have no floor."""
    import numpy as np

    from crystalsearch.predict.conformal import Calibration, label_floor

    gaps = np.array([r.properties["band_gap"] for r in mp_sample])
    e_form = np.array([r.properties["formation_energy_per_atom"] for r in mp_sample])
    assert (gaps == 0).any() and label_floor(gaps, log=False) == 0.0
    assert (e_form < 0).any() and label_floor(e_form, log=False) is None
    assert label_floor(gaps + 1, log=True) is None
    members = np.array([[-0.3, 0.2, 1.5], [-0.1, 0.4, 1.7]])
    cal = Calibration.fit(prop="band_gap", log=False, score="absolute", point=members.mean(0), members=members,
                          y=np.array([0.0, 0.25, 1.6]))  # fmt: skip
    assert cal.floor == 0.0
    assert cal.bounded(members.mean(0)).tolist() == [0.0, pytest.approx(0.3), pytest.approx(1.6)]
    lo, _ = cal.interval(cal.bounded(members.mean(0)), members, 0.5)
    assert (lo >= 0).all()


def test_stage_table_says_where_the_labels_changed() -> None:
    from crystalsearch.train.ensemble import history_note

    def stage(mean: float) -> dict[str, object]:
        return {"init": "default", "epochs_run": 5, "lr": 1e-3, "schedule": "cosine", "loss": "mse",
                "val_mae": 0.1, "test_mae": 0.1, "wall_time_s": 60.0,
                "transform": {"log": False, "mean": mean, "std": 1.0}}  # fmt: skip

    same = history_note([stage(-1.43), stage(-1.43)], transform={"log": False, "mean": -1.43, "std": 1.0})
    assert "| 2 | `default` | 5 |" in same and "labels changed" not in same
    moved = history_note([stage(-1.43), stage(-1.43)], transform={"log": False, "mean": -1.44, "std": 1.0})
    assert "labels changed after stage 2 " in moved
    assert "labels changed after stage 1 (" in history_note([stage(-1.43), stage(-1.5)], transform=None)
    assert history_note([]) == ""
