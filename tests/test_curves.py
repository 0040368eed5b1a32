"""Learning curves (evaluate curves) and the start recommendation they feed (train finetune / train heads)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crystalsearch.evaluate.curves import CurvesConfig, draw, fit_val, journal, run_curves
from crystalsearch.evaluate.curves_report import crossing, reference_data, summarise, write_outputs
from crystalsearch.train.start import load_reference, recommend_start


def test_training_sets_are_nested_and_come_from_the_protocol_train_part() -> None:
    from crystalsearch.train.protocol import protocol_split

    split = protocol_split("melting_temperature")
    orders = {s: draw(split.train, s) for s in range(3)}
    for order in orders.values():
        assert sorted(order.tolist()) == split.train.tolist()  # a shuffle of the train part, nothing else
        assert set(order[:25]) <= set(order[:50]) <= set(order[:100])
        assert not set(order) & set(split.test.tolist())
    assert orders[0][:25].tolist() != orders[1][:25].tolist()
    assert draw(split.train, 0).tolist() == orders[0].tolist()  # seeded


def test_validation_part_keeps_formulas_together_and_uses_a_fifth() -> None:
    from crystalsearch.data import datasets
    from crystalsearch.train.protocol import protocol_split

    ds = datasets.load("melting_temperature")
    chosen = draw(protocol_split("melting_temperature", dataset=ds).train, 0)[:100]
    groups = [ds.records[int(i)].reduced_formula for i in chosen]
    fit, val = fit_val(chosen, seed=0, groups=groups)
    assert sorted([*fit, *val]) == sorted(chosen) and not set(fit) & set(val)
    assert 15 <= len(val) <= 25
    formula = {int(i): ds.records[int(i)].reduced_formula for i in chosen}
    assert not {formula[int(i)] for i in fit} & {formula[int(i)] for i in val}


def _row(prop: str, size: str, seed: int, method: str, mae: float) -> dict[str, Any]:
    n = 10**6 if size == "all" else int(size)
    return {"property": prop, "size": size, "n_labels": n, "seed": seed, "method": method, "mae": mae, "unit": "K",
            "wall_time_s": 1.0}  # fmt: skip


def test_crossing_point_is_where_the_paired_gain_falls_inside_the_seed_spread() -> None:
    rows = []
    for seed in range(5):
        for size, gain in (("25", 30.0 + seed), ("100", 10.0 + seed), ("500", (-1) ** seed * 5.0)):
            rows += [_row("p", size, seed, "finetune_pretrained", 100.0), _row("p", size, seed, "finetune_random",
                                                                                100.0 + gain)]  # fmt: skip
    summary = summarise(rows)["p"]
    assert summary["sizes"]["25"]["paired"]["wins"] == 5
    assert summary["pays_below"] == "500" and "below 500 labels" in summary["verdict"]
    assert crossing({"25": summary["sizes"]["500"]})["verdict"].startswith("pretraining does not beat")
    ref = reference_data(summarise(rows))["properties"]["p"]["sizes"]
    assert [r["n_labels"] for r in ref] == [25, 100, 500] and ref[0]["diff_mean"] == pytest.approx(32.0)


def test_recommendation_follows_the_curves_and_prefers_the_default_within_noise() -> None:
    ref = {"properties": {"a": {"unit": "K", "sizes": [
        {"size": "25", "n_labels": 25, "pretrained": 50.0, "random": 40.0, "diff_mean": -10.0, "diff_std": 2.0,
         "seeds": 5},
        {"size": "500", "n_labels": 500, "pretrained": 20.0, "random": 21.0, "diff_mean": 1.0, "diff_std": 3.0,
         "seeds": 5}]}}}  # fmt: skip
    assert recommend_start("a", 30, reference=ref).start == "random"
    within = recommend_start("a", 2000, reference=ref)
    assert within.start == "pretrained" and within.init == "default" and "within the seed spread" in within.basis
    assert recommend_start("b", 30, reference=ref).start == "random"  # no curve: the measured properties vote
    shipped = load_reference()
    assert shipped["properties"] and all(p["sizes"] for p in shipped["properties"].values())
    assert all(row["seeds"] >= 2 for p in shipped["properties"].values() for row in p["sizes"])


def test_a_size_with_one_paired_seed_does_not_reach_the_recommendation() -> None:
    def size(n: int, seeds: int) -> dict[str, Any]:
        return {"n_labels": n, "methods": {"finetune_pretrained": {"mean": 1.0}, "finetune_random": {"mean": 0.5}},
                "paired": {"mean": -0.5, "std": 0.1 if seeds > 1 else 0.0, "n": seeds}}  # fmt: skip

    ref = reference_data({"p": {"unit": "K", "sizes": {"25": size(25, 5), "all": size(9000, 1)}}})
    assert [row["n_labels"] for row in ref["properties"]["p"]["sizes"]] == [25]


@pytest.mark.slow
def test_curves_run_end_to_end_resume_and_report(tmp_path: Path) -> None:
    config = CurvesConfig(properties=("melting_temperature",), sizes=(25, 50), seeds=(0, 1), passes=100,
                          min_epochs=2, max_epochs=2, patience=2, lrs=(1e-3,))  # fmt: skip
    rows = run_curves(config, out=tmp_path, log=lambda _m: None)
    assert len(rows) == 2 * 2 * 7
    assert {r["method"] for r in rows} == set(config.methods)
    assert all(r["mae"] > 0 and r["n_test"] == 43 for r in rows)
    ft = [r for r in rows if r["method"] == "finetune_random"]
    assert {r["n_labels"] for r in ft} == {25, 50} and all(r["details"]["epochs_run"] <= 2 for r in ft)
    assert all(r["details"]["device"] == "cpu" for r in ft)  # where each fine-tuned cell trained
    again = run_curves(config, out=tmp_path, log=lambda _m: None)  # every cell done: nothing refitted
    assert [r["date"] for r in again] == [r["date"] for r in rows] and len(journal(tmp_path)) == len(rows)
    report = tmp_path / "docs" / "curves.md"
    summary = write_outputs(tmp_path, config=config, report=report, reference=tmp_path / "ref.json")
    assert (tmp_path / "docs" / "curves" / "melting_temperature.png").stat().st_size > 1000
    text = report.read_text()
    assert "## Verdicts" in text and "melting temperature" in text and "Missing cells" not in text
    cell = summary["melting_temperature"]["sizes"]["25"]["methods"]["finetune_random"]
    assert cell["cpu_time_s"] > 0 and f"{cell['wall_time_s']:.1f} ({cell['cpu_time_s']:.1f})" in text
    assert summary["melting_temperature"]["sizes"]["25"]["paired"]["n"] == 2
    assert json.loads((tmp_path / "ref.json").read_text())["properties"]["melting_temperature"]["sizes"]
    assert np.isfinite(summary["melting_temperature"]["sizes"]["50"]["methods"]["blend"]["mean"])
    from typer.testing import CliRunner

    from crystalsearch.cli import app

    page = tmp_path / "page.md"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "curves",
            "--report-only",
            "-p",
            "melting_temperature",
            "--sizes",
            "25,50,100",
            "--seeds",
            "2",
            "--out",
            str(tmp_path),
            "--report",
            str(page),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "melting_temperature 100: not run" in page.read_text()  # a partial run says what is missing
    other = dataclasses.replace(config, properties=("thermal_conductivity",), sizes=(25,))  # seeds 0 and 1
    run_curves(other, out=tmp_path, log=lambda _m: None)
    both = write_outputs(tmp_path, config=other, report=report, reference=tmp_path / "ref.json")
    assert set(both) == {"melting_temperature", "thermal_conductivity"}  # a run of one property keeps the other
    assert set(json.loads((tmp_path / "ref.json").read_text())["properties"]) == set(both)


def test_sizes_option_reads_all_and_refuses_nonsense() -> None:
    from crystalsearch.cli.evaluate_curves import parse_sizes
    from crystalsearch.errors import InputError

    assert parse_sizes("all,100,25,100") == (25, 100, 0)
    for bad in ("5", "ten", ""):
        with pytest.raises(InputError, match="--sizes"):
            parse_sizes(bad)


def test_report_only_without_finished_cells_refuses_and_leaves_the_recommendation_alone(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crystalsearch.cli import app

    reference = tmp_path / "learning_curves.json"
    reference.write_text('{"kept": true}')
    result = CliRunner().invoke(app, ["evaluate", "curves", "--report-only", "--out", str(tmp_path / "nothing"),
                                      "--reference", str(reference)])  # fmt: skip
    assert result.exit_code == 2
    assert "no finished cells to report" in " ".join(result.output.split())
    assert reference.read_text() == '{"kept": true}' and not (tmp_path / "nothing").exists()


def test_an_interrupted_finetuning_cell_resumes_to_the_same_number(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import crystalsearch.train.loop_state as loop_state

    config = CurvesConfig(properties=("melting_temperature",), sizes=(25,), seeds=(0,), methods=("finetune_random",),
                          passes=100, min_epochs=3, max_epochs=3, patience=3, lrs=(1e-3, 3e-4))  # fmt: skip
    [whole] = run_curves(config, out=tmp_path / "whole", log=lambda _m: None)

    save, calls = loop_state.save_loop, []

    def killed_in_the_second_rate(*args: Any, **kwargs: Any) -> None:
        save(*args, **kwargs)
        calls.append(kwargs["epoch"])
        if len(calls) == 4:  # 3 epochs of the first rate saved, then 1 of the second: the process dies
            raise KeyboardInterrupt

    monkeypatch.setattr(loop_state, "save_loop", killed_in_the_second_rate)
    with pytest.raises(KeyboardInterrupt):
        run_curves(config, out=tmp_path / "cut", log=lambda _m: None)
    partial = tmp_path / "cut" / "partial" / whole["key"]
    assert sorted(p.name for p in partial.glob("*.pt")) == ["lr0.0003.pt", "lr0.001.pt"]
    assert journal(tmp_path / "cut") == []
    monkeypatch.setattr(loop_state, "save_loop", save)
    [resumed] = run_curves(config, out=tmp_path / "cut", log=lambda _m: None)
    assert resumed["mae"] == whole["mae"] and resumed["details"]["lr"] == whole["details"]["lr"]
    assert resumed["details"]["earlier_wall_s"] > 0 and resumed["wall_time_s"] >= resumed["details"]["earlier_wall_s"]
    assert not partial.exists()  # journalled: the loop states are gone


def test_an_unavailable_device_is_refused_before_any_work(tmp_path: Path) -> None:
    import torch
    from typer.testing import CliRunner

    from crystalsearch.cli import app

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = CliRunner().invoke(app, ["evaluate", "curves", "-p", "melting_temperature", "--sizes", "25",
                                      "--device", "cuda", "--out", str(tmp_path / "c")])  # fmt: skip
    assert result.exit_code == 2 and "no CUDA device is available" in result.output
    assert not (tmp_path / "c").exists()


def test_processes_sharing_a_journal_take_the_cells_no_other_holds(tmp_path: Path) -> None:
    from crystalsearch.atomic import locked
    from crystalsearch.evaluate.curves import cell_key
    from crystalsearch.model.embed import Encoder

    config = CurvesConfig(properties=("melting_temperature",), sizes=(25,), seeds=(0,),
                          methods=("finetune_pretrained", "blend", "ridge_frozen"), passes=100, min_epochs=2,
                          max_epochs=2, patience=2, lrs=(1e-3,))  # fmt: skip
    digest = Encoder.load(config.encoder, device="cpu").hash
    key = cell_key("melting_temperature", 25, 0, "finetune_pretrained", config, digest)
    held = tmp_path / "partial" / key
    held.mkdir(parents=True)
    lines: list[str] = []
    with locked(held):  # another process is fine-tuning this cell
        rows = run_curves(config, out=tmp_path, log=lines.append)
    assert [r["method"] for r in rows] == ["ridge_frozen"]  # the blend waits for the held fine-tuning
    assert any("finetune_pretrained: another process has it" in line for line in lines)
    rows = run_curves(config, out=tmp_path, log=lines.append)  # released: this process takes it, then the blend
    assert sorted(r["method"] for r in rows) == ["blend", "finetune_pretrained", "ridge_frozen"]
    assert not (tmp_path / "partial" / key).exists()


def test_a_long_finetuning_cell_says_where_it_is(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import crystalsearch.evaluate.curve_methods as methods

    config = CurvesConfig(properties=("melting_temperature",), sizes=(25,), seeds=(0, 1),
                          methods=("finetune_random",), passes=100, min_epochs=2, max_epochs=2, patience=2,
                          lrs=(1e-3,))  # fmt: skip
    quiet: list[str] = []
    run_curves(dataclasses.replace(config, seeds=(0,)), out=tmp_path, log=quiet.append)
    assert not any("epoch" in line for line in quiet)  # a short cell stays silent
    monkeypatch.setattr(methods, "HEARTBEAT_S", 0.0)  # every epoch counts as long
    lines: list[str] = []
    run_curves(config, out=tmp_path, log=lines.append)
    beats = [line for line in lines if "epoch" in line]
    assert beats[0].startswith("melting_temperature 25 seed 1 finetune_random, lr 0.001: epoch 1/2, validation MAE")
    assert len(beats) == 2
