"""`train finetune --labels my.csv` and the start recommendation printed by `train finetune` / `train heads`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crystalsearch.cli import app
from crystalsearch.predict.labels import calibration_threshold

TINY = ["--epochs", "1", "--set", "lrs=1e-3", "--set", "compile=false", "--set", "batch_size=16", "--device", "cpu"]


def _labels_csv(folder: Path, n: int, *, bad_rows: bool = True) -> Path:
    """A CSV of ``n`` shipped mp_elasticity materials (MP id, bulk modulus), one as a CIF file, plus bad rows."""
    from crystalsearch.data import datasets

    ds = datasets.load("mp_elasticity")
    y = ds.targets("bulk_modulus_vrh")
    rows = ["structure,bulk_modulus_gpa"]
    good = [i for i in range(len(ds)) if y[i] > 0][:n]
    first = ds.records[good[0]]
    first.structure.to(filename=str(folder / "first.cif"))
    rows.append(f"first.cif,{y[good[0]]}")
    rows += [f"{ds.records[i].material_id},{y[i]}" for i in good[1:]]
    if bad_rows:
        rows += ["missing.cif,12.0", f"{ds.records[good[1]].material_id},not-a-number", "mp-0000000,40"]
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_small_label_set_trains_a_head_and_says_it_has_no_calibration_part(tmp_path: Path) -> None:
    csv = _labels_csv(tmp_path, 29)
    repeated = csv.read_text().splitlines()[2]  # an MP id listed twice (another measurement of it)
    csv.write_text(csv.read_text() + repeated.split(",")[0] + ",101.5\n")
    out = tmp_path / "heads"
    result = CliRunner().invoke(app, ["train", "finetune", "--property", "bulk_modulus", "--labels", str(csv),
                                      "--out", str(out), *TINY])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "learning curves recommend the" in text and "for 30 labels" in text
    assert text.count("skipped ") == 3 and "missing.cif" in text and "not a number" in text
    assert "1 label shares a structure with an earlier row: a structure listed more than once is kept in" in text
    assert "too few to hold out a calibration part" in text and f"needs {calibration_threshold()} labels" in text
    meta = json.loads((out / "seed0" / "model.json").read_text())["metadata"]
    assert meta["start"]["n_labels"] == 30 and meta["start"]["chosen"] in ("default", "random")
    assert meta["n_train"] + meta["n_val"] == 30
    card = (out / "seed0" / "README.md").read_text()
    assert "Start: `" in card and "learning curves" in card and "labels.csv" in card
    assert not (out / "calibration.json").exists()

    # `predict --heads` reads the property from the heads; one head has no ± (not a zero spread)
    first = str(tmp_path / "first.cif")
    result = CliRunner().invoke(app, ["predict", "--heads", str(out), "--no-evidence", "--json", first])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["property"] == "bulk_modulus" and answer["ensemble_size"] == 1
    [row] = answer["results"]
    assert row["uncertainty"] is None and row["value"] > 0 and answer["uncertainty"].startswith("null: one head")
    result = CliRunner().invoke(app, ["predict", "-p", "band_gap", "--heads", str(out), "--no-evidence", first])
    assert result.exit_code == 2
    assert "trained for bulk_modulus, not band_gap" in " ".join(result.output.split())


def test_large_enough_label_set_gets_calibrated_intervals(tmp_path: Path) -> None:
    from crystalsearch.io.readers import read_structure
    from crystalsearch.predict.predictor import Predictor

    n = calibration_threshold()
    csv = _labels_csv(tmp_path, n, bad_rows=False)
    out = tmp_path / "heads"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "finetune",
            "--property",
            "bulk_modulus",
            "--labels",
            str(csv),
            "--out",
            str(out),
            "--seeds",
            "2",
            "--from",
            "random",
            "--json",
            *TINY,
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["calibrated"] is True and summary["n_calib"] >= 20 and summary["n_labels"] == n
    assert summary["property"] == "bulk_modulus" and summary["unit"] == "GPa" and summary["shipped_property"]
    assert summary["start"]["chosen"] == "random"
    predictor = Predictor.load("bulk_modulus", folder=out)
    assert predictor.calibration is not None and len(predictor.members) == 2
    [pred] = predictor.predict([("first", read_structure(tmp_path / "first.cif"))])
    assert pred.interval is not None and pred.interval[0] <= pred.value <= pred.interval[1]
    # the way a user reads it: the CLI on the folder, property taken from the heads, interval and ± given
    result = CliRunner().invoke(app, ["predict", "--heads", str(out), "--no-evidence", "--json",
                                      str(tmp_path / "first.cif")])  # fmt: skip
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["results"]
    assert row["property"] == "bulk_modulus" and row["coverage"] == 0.9 and row["uncertainty"] is not None
    assert row["interval"][0] <= row["value"] <= row["interval"][1]


def test_heads_print_and_record_the_start(tmp_path: Path) -> None:
    out = tmp_path / "melt"
    result = CliRunner().invoke(app, ["train", "heads", "-p", "melting_temperature", "--out", str(out),
                                      "--set", "seeds=1", "--set", "epochs=1", "--set", "compile=false",
                                      "--set", "max_train=30", "--set", "device=cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "learning curves recommend the" in " ".join(result.output.split())
    meta = json.loads((out / "seed0" / "model.json").read_text())["metadata"]
    assert meta["start"]["n_labels"] == 30 + meta["protocol"]["n_val"]
    assert meta["finetune"]["init"] == meta["start"]["chosen"]
    assert "Start: `" in (out / "seed0" / "README.md").read_text()


def test_missing_heads_folder_and_a_folder_given_as_labels_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["predict", "--heads", str(tmp_path / "nowhere"), "--no-evidence", "mp-149"])
    assert result.exit_code == 2 and "no such heads folder" in result.output
    result = runner.invoke(app, ["train", "finetune", "--property", "bulk_modulus", "--labels", str(tmp_path)])
    assert result.exit_code == 2 and "a folder, not a labels CSV" in result.output
    assert "Traceback" not in result.output


def test_split_keeps_groups_together_and_is_a_plain_shuffle_without_repeats() -> None:
    from crystalsearch.predict.labels import split_labels

    n = 200
    plain, distinct = split_labels(n, seed=3), split_labels(n, seed=3, groups=[f"s{i}" for i in range(n)])
    assert all(np.array_equal(plain[k], distinct[k]) for k in plain)
    assert len(plain["calib"]) == 30 and len(plain["val"]) == 40
    assert sorted(np.concatenate(list(plain.values())).tolist()) == list(range(n))
    groups = [f"f{i // 4}" for i in range(n)]  # 50 formulas, 4 polymorphs each
    parts = split_labels(n, seed=3, groups=groups)
    where = {i: name for name, idx in parts.items() for i in idx.tolist()}
    for g in range(50):
        assert len({where[i] for i in range(4 * g, 4 * g + 4)}) == 1
    assert len(parts["calib"]) >= 30 and len(parts["val"]) >= 40 and len(parts["train"]) > 100


def _tiny_index(out: Path) -> Path:
    """An index of 12 shipped mp_elasticity materials (with their bulk moduli), default encoder."""
    from crystalsearch.catalog.build import build_index
    from crystalsearch.data import datasets
    from crystalsearch.model.embed import Encoder

    build_index(list(datasets.load("mp_elasticity").records[:12]), encoder=Encoder.load("default"), out=out,
                progress=False)  # fmt: skip
    return out


def test_a_property_of_ones_own_trains_and_predicts_with_its_unit(tmp_path: Path) -> None:
    csv = _labels_csv(tmp_path, 20, bad_rows=False)  # real structures and values, under a name of one's own
    out = tmp_path / "hardness"
    base = ["train", "finetune", "--labels", str(csv), "--out", str(out), *TINY]
    runner = CliRunner()
    result = runner.invoke(app, [*base, "--property", "vickers_hardness"])
    assert result.exit_code == 2 and "give its unit: --unit" in " ".join(result.output.split())
    result = runner.invoke(app, [*base, "--property", "k_vrh", "--unit", "GPa"])  # a registry column's name
    assert result.exit_code == 2 and "is the registry's" in result.output
    result = runner.invoke(app, [*base, "--property", "bulk_modulus", "--unit", "MPa"])
    assert result.exit_code == 2 and "bulk_modulus is in GPa, not 'MPa'" in " ".join(result.output.split())
    result = runner.invoke(app, [*base, "--property", "vickers_hardness", "--unit", "GPa", "--json"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "seed0" / "model.json").read_text())["metadata"]
    assert meta["property"] == "vickers_hardness" and meta["unit"] == "GPa" and meta["dataset"] == ""
    assert "the user's own labels" in (out / "seed0" / "README.md").read_text()
    index = _tiny_index(tmp_path / "index")  # evidence is looked for, and none can exist for this property
    result = runner.invoke(app, ["predict", "--heads", str(out), "--index", str(index), "--json",
                                 str(tmp_path / "first.cif")])  # fmt: skip
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    [row] = answer["results"]
    assert answer["property"] == "vickers_hardness" and row["unit"] == "GPa" and row["value"] > 0
    assert row["neighbors"] == [] and row["catalog_value"] is None  # the catalog has no such values
    result = runner.invoke(app, ["predict", "-p", "vickers_hardness", str(tmp_path / "first.cif")])
    assert result.exit_code == 2 and "--heads DIR" in result.output


def test_labels_columns_are_found_by_their_header_and_rows_named_by_their_line(tmp_path: Path) -> None:
    from crystalsearch.data import datasets
    from crystalsearch.errors import InputError
    from crystalsearch.predict.labels import read_labels

    ds = datasets.load("mp_elasticity")
    y = ds.targets("bulk_modulus_vrh")
    good = [i for i in range(len(ds)) if y[i] > 0][:12]
    lines = ["# bulk moduli measured in our lab", "formula,bulk_modulus,material_id", ""]
    lines += [f"{ds.records[i].formula},{y[i]},{ds.records[i].material_id}" for i in good]
    lines += ["NaCl,-4,mp-22862"]  # line 16 of the file (a comment and a blank line come before the data)
    csv = tmp_path / "lab.csv"
    csv.write_text("\ufeff" + "\n".join(lines) + "\n")  # a spreadsheet's byte-order mark too
    labels = read_labels(csv, log_target=True, prop="bulk_modulus")
    assert labels.ids == [ds.records[i].material_id for i in good] and labels.values == [float(y[i]) for i in good]
    assert labels.skipped == [f"{csv}:16: value -4 unusable (must be > 0)"]
    csv.write_text("formula,density,source\nNaCl,2.1,lab\n")
    with pytest.raises(InputError, match="name the structure column 'structure'"):
        read_labels(csv, log_target=False, prop="bulk_modulus")
    rows = [f"{ds.records[i].material_id},run {k},{y[i]}" for k, i in enumerate(good)]  # the one numeric column
    csv.write_text("id,note,K\n" + "\n".join(rows) + "\n")
    assert read_labels(csv, log_target=True, prop="bulk_modulus").values == [float(y[i]) for i in good]
