"""The paper's evaluation on small subsets of the shipped data: random forest vs the mean predictor,
resumable fine-tuning with the lr chosen once, the augmentation study and UMAP figures (decodable PNGs),
``table1.json``'s public shape, the report, compound classes, and the CLI's one-line errors."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pymatgen.core")
pytest.importorskip("sklearn")

from typer.testing import CliRunner  # noqa: E402

from crystalsearch.cli import app  # noqa: E402
from crystalsearch.errors import InputError  # noqa: E402
from crystalsearch.evaluate import record, results  # noqa: E402
from crystalsearch.evaluate.classes import CLASSES, compound_class  # noqa: E402
from crystalsearch.evaluate.embeddings import EmbeddingsConfig, evaluate_embeddings, impute  # noqa: E402
from crystalsearch.evaluate.features import parse_encoders, parse_seeds  # noqa: E402

PROPS = {"bulk_modulus", "thermal_conductivity", "melting_temperature"}


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private graph/fingerprint cache (not ~/.cache); one torch thread, restored afterwards."""
    path = tmp_path_factory.mktemp("eval-cache")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRYSTALSEARCH_CACHE", str(path))
        torch.set_num_threads(1)
        yield path
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def rf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Random forest on Magpie and on an untrained encoder vs the mean, 400 bulk-modulus crystals, 2 seeds."""
    out = tmp_path_factory.mktemp("results")
    config = EmbeddingsConfig(
        properties=("bulk_modulus",), methods=("magpie", "random", "mean"), seeds=(0, 1), max_structures=400
    )
    return out, evaluate_embeddings(config, out=out)


def table_numbers(text: str) -> list[float]:
    """Every number of the markdown 'Table 1 (ours)' section."""
    section = text.split("## Table 1 (ours)")[1].split("## Table 1 (paper)")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "±" in line]
    return [float(x) for row in rows for x in re.findall(r"(-?\d+\.?\d*|nan|inf) ±", row)]


# -- compound classes, parsing, imputation -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("elements", "expected"),
    [
        (["Na", "Cl"], "halide"), (["Si", "O"], "oxide"), (["Bi", "O", "Cl"], "oxide"), (["Li", "O", "H"], "oxide"),
        (["Ga", "As"], "pnictide (P, As, Sb)"), (["Zn", "Se"], "selenide/telluride"), (["Cu", "S"], "sulfide"),
        (["B", "N"], "nitride"), (["Si", "C"], "carbide"), (["Li", "H"], "hydride"), (["Mg", "B"], "boride"),
        (["Fe", "Al"], "intermetallic"), (["Mo", "Si"], "intermetallic"), (["Si"], "element"),
    ],
)  # fmt: skip
def test_compound_class(elements: list[str], expected: str) -> None:
    assert compound_class(elements) == expected


def test_compound_classes_of_the_shipped_elasticity_set() -> None:
    from crystalsearch.data import datasets

    classes = [compound_class(r.species) for r in datasets.load("mp_elasticity").records]
    assert set(classes) <= set(CLASSES)
    assert classes.count("oxide") > 300 and classes.count("intermetallic") > 300  # both well represented


def test_parse_options() -> None:
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("3,1,3") == (3, 1)
    assert parse_encoders("crystalclr_cs=runs/x/encoder") == {
        "crystalclr": "crystalclr",
        "crystalclr_cs": "runs/x/encoder",
    }
    for bad in ("a-b", "", "-1"):
        with pytest.raises(InputError, match="--seeds"):
            parse_seeds(bad)
    with pytest.raises(InputError, match="NAME=PATH"):
        parse_encoders("crystalclr")


def test_impute_uses_training_column_means() -> None:
    train = np.array([[1.0, np.nan, np.inf], [3.0, np.nan, 5.0]])
    test = np.array([[np.nan, np.nan, np.nan]])
    tr, te = impute(train, test)
    assert tr.tolist() == [[1.0, 0.0, 5.0], [3.0, 0.0, 5.0]]
    assert te.tolist() == [[2.0, 0.0, 5.0]]


# -- Table 1, top ----------------------------------------------------------------------------------------
def test_random_forest_beats_the_training_mean_on_bulk_modulus(rf: tuple[Path, dict]) -> None:
    _, cells = rf
    bulk = cells["bulk_modulus"]
    for method in ("magpie", "random", "mean"):
        assert len(bulk[method]["maes"]) == 2 and all(math.isfinite(v) and v > 0 for v in bulk[method]["maes"])
    assert bulk["magpie"]["mae_mean"] < 0.6 * bulk["mean"]["mae_mean"]
    assert bulk["random"]["mae_mean"] < bulk["mean"]["mae_mean"]  # even an untrained CGCNN carries signal
    assert bulk["magpie"]["n_features"] == 132 and bulk["magpie"]["n_train"] + bulk["magpie"]["n_test"] < 400


def test_table1_json_has_the_public_shape(rf: tuple[Path, dict]) -> None:
    out, cells = rf
    table = json.loads((out / "table1.json").read_text())
    assert set(table) == {"random_forest", "finetune"}
    results.check_table1(table)
    assert set(table["random_forest"]) <= PROPS
    cell = table["random_forest"]["bulk_modulus"]["magpie"]
    assert set(cell) == {"mae_mean", "mae_std"}
    assert cell["mae_mean"] == pytest.approx(np.mean(cells["bulk_modulus"]["magpie"]["maes"]))
    assert cell["mae_std"] == pytest.approx(np.std(cells["bulk_modulus"]["magpie"]["maes"]))
    with pytest.raises(InputError):
        results.check_table1({"random_forest": {"bulk_modulus": {"x": {"mae_mean": 1.0}}}, "finetune": {}})


def test_report_has_table1_in_the_paper_layout(rf: tuple[Path, dict]) -> None:
    out, _ = rf
    text = (out / "report.md").read_text()
    header = "| Method | Melting temperature (K) | Thermal conductivity (W/m/K) | Bulk modulus (GPa) |"
    assert text.count(header) == 2  # ours and the paper's
    numbers = table_numbers(text)
    assert len(numbers) == 3 and all(math.isfinite(v) for v in numbers)
    paper = text.split("## Table 1 (paper)")[1].split("\n## ")[0]
    assert "| ElementProperty (Magpie) | 106.1 ± 1.6 | 3.39 ± 0.03 | 17.64 ± 0.07 |" in paper
    assert "| CrystalCLR+CS | 102.8 ± 2.6 | 3.11 ± 0.13 | 12.95 ± 0.28 |" in paper
    assert "placeholder" not in text.lower() and "?" not in paper  # every paper cell is a number
    assert "400 / 6,111" in text  # data size recorded


def test_updates_merge_cells_and_halves(tmp_path: Path) -> None:
    prov = {"maes": [1.0, 3.0], "seeds": [0, 1]}
    record.update(tmp_path, half="random_forest", cells={"bulk_modulus": {"magpie": prov}})
    record.update(tmp_path, half="random_forest", cells={"bulk_modulus": {"mean": {**prov, "maes": [5.0]}}})
    record.update(tmp_path, half="finetune", cells={"melting_temperature": {"random": prov}})
    table = json.loads((tmp_path / "table1.json").read_text())
    assert table == {
        "random_forest": {
            "bulk_modulus": {"magpie": {"mae_mean": 2.0, "mae_std": 1.0}, "mean": {"mae_mean": 5.0, "mae_std": 0.0}}
        },
        "finetune": {"melting_temperature": {"random": {"mae_mean": 2.0, "mae_std": 1.0}}},
    }
    assert not list(tmp_path.glob("*.partial"))


# -- Table 1, bottom ---------------------------------------------------------------------------------------
def test_finetune_is_resumable_and_reuses_the_first_seeds_lr(tmp_path: Path) -> None:
    from crystalsearch.evaluate.finetuning import RUNS, FinetuneEvalConfig, evaluate_finetune
    from crystalsearch.model.cgcnn import CGCNNEncoder
    from crystalsearch.model.checkpoint import save_checkpoint
    from crystalsearch.structure.graph.settings import GraphSettings

    torch.manual_seed(0)
    enc = CGCNNEncoder()
    ckpt = save_checkpoint(tmp_path / "enc", state_dict=enc.state_dict(), model_class="crystalsearch.model.cgcnn."
                           "CGCNNEncoder", config=enc.config.to_dict(), graph=GraphSettings(8.0, 12))  # fmt: skip
    config = FinetuneEvalConfig(
        properties=("melting_temperature",), inits=("random", "crystalclr"), encoders={"crystalclr": str(ckpt)},
        seeds=(0, 1), lrs=(1e-3, 3e-4), epochs=1, patience=1, batch_size=32, max_structures=120, device="cpu",
        compile=False,
    )  # fmt: skip
    out = tmp_path / "results"
    cells = evaluate_finetune(config, out=out)
    rows = [json.loads(line) for line in (out / RUNS).read_text().splitlines()]
    assert len(rows) == 4
    for init in ("random", "crystalclr"):
        r0, r1 = (next(r for r in rows if r["init"] == init and r["seed"] == s) for s in (0, 1))
        assert len(r0["lr_grid"]) == 2 and list(r1["lr_grid"]) == [str(r0["lr"])] and r1["lr"] == r0["lr"]
        assert cells["melting_temperature"][init]["complete"]
    assert cells["melting_temperature"]["crystalclr"]["encoder"]["digest"]  # provenance of the weights
    table = json.loads((out / "table1.json").read_text())
    results.check_table1(table)
    assert set(table["finetune"]["melting_temperature"]) == {"random", "crystalclr"}
    assert all(math.isfinite(v) for c in table["finetune"]["melting_temperature"].values() for v in c.values())
    evaluate_finetune(config, out=out)  # resumed: every run is skipped
    assert len((out / RUNS).read_text().splitlines()) == 4
    assert all(math.isfinite(v) for v in table_numbers((out / "report.md").read_text()))


# -- figures -------------------------------------------------------------------------------------------------
def decoded(path: Path) -> np.ndarray:
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert img.std() > 0.01  # not a blank canvas
    return img


def test_augmentation_study_writes_a_symmetric_heatmap(tmp_path: Path) -> None:
    from crystalsearch.evaluate.augmentations import AugmentationStudyConfig, evaluate_augmentations

    config = AugmentationStudyConfig(
        augmentations=("perturb", "column_replace"), structures=48, epochs=1, batch_size=24, eval_seeds=(0,),
        eval_max_structures=120, properties=("melting_temperature", "bulk_modulus"), device="cpu", threads=1,
    )  # fmt: skip
    out, runs = tmp_path / "results", tmp_path / "runs"
    summary = evaluate_augmentations(config, out=out, runs_dir=runs, show_progress=False)
    assert set(summary["runs"]) == {"perturb", "column_replace", "perturb+column_replace"}
    for m in summary["matrix"].values():
        arr = np.array(m)
        assert arr.shape == (2, 2) and np.isfinite(arr).all() and (arr > 0).all()
        assert arr[0, 1] == arr[1, 0]  # order cannot matter in the fast path
    decoded(out / "figure2_augmentations.png")
    assert "## Figure 2" in (out / "report.md").read_text()
    again = evaluate_augmentations(config, out=out, runs_dir=runs, show_progress=False)
    assert all(r["reused"] for r in again["runs"].values()) and again["matrix"] == summary["matrix"]


def test_supercell_view_has_the_same_embedding_in_eval_mode(mp_small: list) -> None:
    """Why supercell alone is (nearly) no augmentation for a mean-pooled CGCNN on exact graphs."""
    from crystalsearch.model.cgcnn import CGCNNEncoder
    from crystalsearch.structure.augment.fast import AugmentConfig, augment
    from crystalsearch.structure.graph.dataset import store_for_records

    store = store_for_records(mp_small[:6], show_progress=False)
    idx = np.arange(len(store))
    sup = augment(store.gather(idx, candidates=True), config=AugmentConfig.only("supercell"),
                  rng=np.random.default_rng(0), radius=store.radius, max_neighbors=store.max_neighbors)  # fmt: skip
    torch.manual_seed(0)
    enc = CGCNNEncoder().eval()
    with torch.no_grad():
        assert torch.allclose(enc(store.batch(idx)), enc(sup.batch), atol=1e-4)
    assert int(sup.batch.num_atoms.sum()) == 27 * int(store.batch(idx).num_atoms.sum())


def test_umap_drawing_is_a_decodable_png(tmp_path: Path) -> None:
    from crystalsearch.evaluate.umap_plot import draw, neighbour_purity

    classes = np.array(["oxide"] * 40 + ["halide"] * 30 + ["intermetallic"] * 30)
    xy = np.random.default_rng(0).normal(size=(100, 2)) + 4.0 * (classes == "oxide")[:, None]
    assert neighbour_purity(xy, classes) > 0.5 and neighbour_purity(xy[:1], classes[:1]) != 0.5
    panels = {k: {"title": k, "xy": xy, "purity": 0.5} for k in ("embedding", "magpie")}
    draw(panels, classes, tmp_path / "f.png", n=100, dataset="mp_elasticity")
    decoded(tmp_path / "f.png")


@pytest.mark.slow
def test_umap_figure(tmp_path: Path) -> None:
    """End to end on 150 crystals (slow: UMAP's numba compilation takes about a minute)."""
    pytest.importorskip("umap")
    from crystalsearch.evaluate.umap_plot import UmapConfig, plot_umap

    summary = plot_umap(UmapConfig(encoder="random", max_structures=150, n_neighbors=10), out=tmp_path)
    decoded(tmp_path / "figure3_umap.png")
    assert summary["n_structures"] == 150 and sum(summary["class_counts"].values()) == 150
    assert all(0.0 <= v <= 1.0 for v in (*summary["purity"].values(), summary["purity_chance"]))
    assert summary["purity"]["magpie"] > summary["purity_chance"]  # composition features group classes
    text = (tmp_path / "report.md").read_text()
    assert "figure3_umap.png" in text and "**intermetallic**" in text


# -- CLI ------------------------------------------------------------------------------------------------------
def test_cli_embeddings_json(rf: tuple[Path, dict], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "embeddings", "--methods", "magpie,mean", "--properties",
                                      "bulk_modulus", "--seeds", "0", "--max-structures", "400", "--out",
                                      str(tmp_path), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    cell = data["random_forest"]["bulk_modulus"]
    assert cell["magpie"]["mae_mean"] == pytest.approx(rf[1]["bulk_modulus"]["magpie"]["maes"][0])
    assert cell["magpie"]["mae_mean"] < cell["mean"]["mae_mean"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "embeddings", "--methods", "nope"], "--methods: unknown 'nope'"),
        (["evaluate", "embeddings", "--seeds", "x"], "--seeds"),
        (["evaluate", "finetune", "--lrs", "fast"], "--lrs"),
        (["evaluate", "finetune", "--inits", "random,crystalclr", "--encoders", "crystalclr=/nonexistent"],
         "/nonexistent: not a crystalsearch checkpoint"),
        (["evaluate", "augmentations", "--structures", "10", "--batch-size", "32"], "fewer than one batch"),
        (["evaluate", "augmentations", "--augmentations", "rotate"], "--augmentations"),
        (["plot", "umap", "--dataset", "nope"], "--dataset"),
        (["plot", "umap", "--encoder", "/nonexistent"], "/nonexistent"),
    ],
)  # fmt: skip
def test_cli_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "table1.json").exists()


def test_cli_modules_import_no_heavy_libraries() -> None:
    code = (
        "import sys, crystalsearch.cli.evaluate, crystalsearch.cli.plot, crystalsearch.evaluate.report\n"
        "heavy = [m for m in ('sklearn', 'umap', 'matplotlib', 'matminer', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
