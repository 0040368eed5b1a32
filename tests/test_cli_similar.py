"""`crystalsearch similar`, `index build|add|info`, `info` and `evaluate retrieval` on a small real index."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from crystalsearch.catalog.build import build_index
from crystalsearch.cli import app
from crystalsearch.data import datasets
from crystalsearch.data.entries import merge_records
from crystalsearch.model.embed import Encoder

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
HIT_KEYS = {"rank", "material_id", "formula", "similarity", "spacegroup", "spacegroup_number", "crystal_system",
            "nsites", "density", "volume_per_atom", "properties", "source"}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["CRYSTALSEARCH_CACHE"] = str(tmp_path_factory.mktemp("cli-cache"))


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mp = datasets.load("mp_structures").records
    by_id = {r.material_id: r for r in mp}
    wanted = ["mp-22862", "mp-149", "mp-2534", "mp-2998", "mp-19017", "mp-2657", *(r.material_id for r in mp[:150])]
    chosen = [by_id[i] for i in dict.fromkeys(wanted)]
    ids = {r.material_id for r in chosen}
    elastic = [r for r in datasets.load("mp_elasticity").records if r.material_id in ids]
    entries = merge_records([("mp_structures", chosen), ("mp_elasticity", elastic)])
    out = tmp_path_factory.mktemp("cli-index") / "idx"
    build_index(entries, encoder=Encoder.random(seed=0), out=out, progress=False)
    return out


def run(*args: str) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_similar_json_shape(index_dir: Path) -> None:
    result = run("similar", EXAMPLES / "NaCl.cif", "mp-149", "-k", "3", "--index", index_dir, "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    data = json.loads(result.stdout)["results"]  # type: ignore[attr-defined]
    assert isinstance(data, list) and [d["query"] for d in data] == [str(EXAMPLES / "NaCl.cif"), "mp-149"]
    for d in data:
        assert {"query", "hits"} <= set(d) and len(d["hits"]) == 3
        for h in d["hits"]:
            assert set(h) >= HIT_KEYS and isinstance(h["similarity"], float) and isinstance(h["properties"], dict)
    assert data[0]["hits"][0]["material_id"] == "mp-22862"
    assert "mp-149" not in [h["material_id"] for h in data[1]["hits"]]


def test_similar_bad_input_exit_2_others_answered(index_dir: Path) -> None:
    result = run("similar", EXAMPLES / "Si.cif", "missing.cif", "mp-99999999", "--index", index_dir, "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)["results"]  # type: ignore[attr-defined]
    assert len(data) == 3 and len(data[0]["hits"]) == 10 and data[0]["error"] is None
    assert data[1]["hits"] == [] and "file not found" in data[1]["error"]
    assert "unknown material id" in data[2]["error"]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


def test_similar_filters_table_and_csv(index_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "hits.csv"
    args = ["similar", EXAMPLES / "BaTiO3.cif", "-k", "4", "--index", index_dir, "--where", "band_gap > 0.5",
            "--elements", "O", "--max-sites", "40", "--csv", out]  # fmt: skip
    result = run(*args)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "BaTiO3.cif" in result.stdout and "similarity" in result.stdout  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 4 and all(float(r["band_gap"]) > 0.5 and int(r["nsites"]) <= 40 for r in rows)


def test_similar_rejects_bad_where_in_one_line(index_dir: Path) -> None:
    result = run("similar", "mp-149", "--index", index_dir, "--where", "band_gap > 1; DROP TABLE materials")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--where" in result.output  # type: ignore[attr-defined]


def test_similar_known_json(index_dir: Path) -> None:
    result = run("similar", EXAMPLES / "NaCl.cif", "-k", "2", "--index", index_dir, "--known", "--json")
    data = json.loads(result.stdout)["results"]  # type: ignore[attr-defined]
    assert data[0]["known_as"] == ["mp-22862"] and data[0]["hits"][0]["same_structure"] is True
    assert data[0]["known"]["status"] == "known" and data[0]["known"]["material_id"] == "mp-22862"


def test_index_build_add_info(tmp_path: Path, index_dir: Path) -> None:
    out = tmp_path / "mine"
    result = run("index", "build", EXAMPLES / "NaCl.cif", EXAMPLES / "Si.cif", "--encoder", "random", "--out", out)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    result = run("index", "add", str(EXAMPLES / "*.cif"), "--index", out, "--json")
    assert result.exit_code == 2  # NaCl and Si are already indexed: refused, the other four added
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert sorted(data["added"]) == ["BaTiO3", "GaAs", "LiFePO4", "TiO2_rutile"] and data["materials"] == 6
    assert sorted(data["refused"]) == [str(EXAMPLES / "NaCl.cif"), str(EXAMPLES / "Si.cif")]
    assert all("is already in the index" in f for f in data["failed"])
    result = run("index", "info", "--index", out, "--json")
    info = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert info["schema_version"] == 1 and info["command"] == "index info"
    assert info["count"] == 6 and info["database"]["materials"] == 6 and info["checksums"] == "ok"
    assert info["encoder"]["hash"] == Encoder.random(seed=0).hash
    result = run("index", "build", "--dataset", "mp_structures", EXAMPLES / "Si.cif")
    assert result.exit_code == 2 and "--out is required" in result.output  # type: ignore[attr-defined]


def test_similar_refuses_encoder_hash_mismatch(index_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(index_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["encoder"]["hash"] = "0123456789abcdef"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = run("similar", EXAMPLES / "Si.cif", "--index", copy)
    assert result.exit_code == 2 and "Traceback" not in result.output  # type: ignore[attr-defined]
    assert "0123456789abcdef" in result.output and Encoder.random(seed=0).hash in result.output  # type: ignore[attr-defined]


def test_info_json() -> None:
    result = run("info", "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert {d["dataset"] for d in data["data"]} == set(datasets.DATASETS)
    assert {"models", "indexes", "cache", "packages"} <= set(data)
    assert data["schema_version"] == 1 and data["command"] == "info"


def test_evaluate_retrieval_command(index_dir: Path) -> None:
    from crystalsearch.cli.evaluate_retrieval import register

    sub = typer.Typer()
    register(sub)

    @sub.callback()
    def _group() -> None:
        """evaluate"""

    result = CliRunner().invoke(sub, ["retrieval", "--index", str(index_dir), "-n", "20", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["invariants_at_rank_1"] is True
    assert {r["kind"] for r in data["results"]} == {"rotation", "translation", "supercell", "perturb", "strain"}


# -- tables never hide numbers, one JSON schema --------------------------------------------------------


def test_similar_table_drops_whole_columns_and_names_them(index_dir: Path) -> None:
    from rich.console import Console

    from crystalsearch.cli.similar import render_table, units_of
    from crystalsearch.identity.catalog import Catalog

    with Catalog.open(index_dir) as catalog:
        (result,) = catalog.search([str(EXAMPLES / "GaAs.cif")], k=5)
    for width in (40, 80, 200):
        out = Console(width=width, record=True, force_terminal=False)
        render_table(result, units=units_of({}), out=out)
        text = out.export_text()
        assert "…" not in text and "..." not in text  # numbers are never cut
        assert all(len(line) <= width for line in text.splitlines())
        assert f"{result.hits[0].similarity:.4f}" in text and "mp-2534" in text
        if width < 200:
            assert f"not shown (terminal {width} columns wide)" in " ".join(text.split())
    assert "not shown" not in text and "K_VRH" in text and "T_melt" not in text  # no hit has T_melt


def test_similarity_shown_with_enough_digits() -> None:
    from crystalsearch.cli.render import similarity_text

    assert similarity_text(0.99997) == "0.99997" and similarity_text(0.5) == "0.5000"
    assert similarity_text(1.0) == "1.0000" and similarity_text(0.9999996) == "1.0000"
    assert similarity_text(0.999994) == "0.99999" and similarity_text(0.9999991) == "0.999999"


def test_similar_piped_prints_full_tab_separated_rows(index_dir: Path) -> None:
    result = run("similar", EXAMPLES / "GaAs.cif", EXAMPLES / "NaCl.cif", "-k", "3", "--index", index_dir)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.stdout.splitlines()  # type: ignore[attr-defined]
    header = lines[0].split("\t")
    assert header[:6] == ["query", "rank", "material_id", "formula", "spacegroup", "similarity"]
    assert "bulk_modulus_vrh (GPa)" in header and "band_gap (eV)" in header
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 6 and all(len(r) == len(header) for r in rows)
    gaas = rows[0]
    assert gaas[2] == "mp-2534" and float(gaas[header.index("bulk_modulus_vrh (GPa)")]) == pytest.approx(60.7)


def test_similar_json_schema(index_dir: Path) -> None:
    result = run("similar", EXAMPLES / "GaAs.cif", "missing.cif", "-k", "3", "--index", index_dir, "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert data["schema_version"] == 1 and data["command"] == "similar"
    assert data["units"]["bulk_modulus_vrh"] == "GPa" and "similarity" in data["units"]
    ok, bad = data["results"]
    assert ok["error"] is None and bad["error"].startswith("missing.cif: file not found") and bad["hits"] == []
    keys = None
    for hit in ok["hits"]:
        props = hit["properties"]
        keys = keys or set(props)
        assert set(props) == keys and "melting_temperature" in props  # every key, null when unknown
        assert props["melting_temperature"] is None
        for value in (hit["similarity"], hit["density"], *[v for v in props.values() if v is not None]):
            assert len(repr(value).split(".")[-1]) <= 6  # no float noise such as 5.003299999999999
    assert ok["hits"][0]["properties"]["bulk_modulus_vrh"] == 60.7


def test_index_add_names_by_stem_refuses_duplicates_and_takes_ids(tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "mine"
    assert run("index", "build", EXAMPLES / "Si.cif", "--encoder", "random", "--out", out).exit_code == 0  # type: ignore[attr-defined]
    (tmp_path / "a").mkdir()
    shutil.copy(EXAMPLES / "NaCl.cif", tmp_path / "a" / "x.cif")
    shutil.copy(EXAMPLES / "GaAs.cif", tmp_path / "x.cif")
    # the same stem twice in one batch: the first is added as "x", the second refused
    result = run("index", "add", tmp_path / "a" / "x.cif", tmp_path / "x.cif", "--index", out, "--json")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert data["added"] == ["x"] and data["refused"] == [str(tmp_path / "x.cif")]
    assert "id 'x' is already used by" in data["failed"][0]
    # added again later (as typed differently): refused with a clear one-line message
    result = run("index", "add", tmp_path / "a" / ".." / "a" / "x.cif", "--index", out)
    assert result.exit_code == 2 and "id 'x' is already in the index" in result.output  # type: ignore[attr-defined]
    # --id names it
    result = run("index", "add", tmp_path / "x.cif", "--id", "GaAs-mine", "--index", out, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["added"] == ["GaAs-mine"]  # type: ignore[attr-defined]
    result = run("index", "add", tmp_path / "x.cif", "--id", "p", "--id", "q", "--index", out)
    assert result.exit_code == 2 and "2 id(s) given for 1 structure(s)" in result.output  # type: ignore[attr-defined]
    hits = run("similar", "x", "--index", out, "--json")
    assert json.loads(hits.stdout)["results"][0]["error"] is None  # type: ignore[attr-defined]


def test_material_id_from_source_ids() -> None:
    from crystalsearch.cli.index import material_id

    assert material_id("a/b/x.cif") == "x" and material_id("x.cif") == "x"
    assert material_id("dir/multi.cif#block2") == "multi#block2" and material_id("list.json#3") == "list#3"
    assert material_id("POSCAR") == "POSCAR" and material_id("y.vasp.gz") == "y" and material_id("mp-149") == "mp-149"
