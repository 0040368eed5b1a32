"""`crystalsearch embed`: .npy + ids sidecar, .csv, .parquet; encoder recorded; input order;
failures reported and skipped with exit 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crystalsearch.cli import app
from crystalsearch.io import read_structure
from crystalsearch.model.embed import Encoder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_embed_npy_in_input_order_with_sidecar_and_failures(tmp_path: Path) -> None:
    out = tmp_path / "h.npy"
    result = run("embed", EXAMPLES / "Si.cif", "missing.cif", "mp-22862", EXAMPLES / "GaAs.cif", "--out", out,
                 "--encoder", "crystalclr")  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output  # type: ignore[attr-defined]
    assert "missing.cif: file not found" in result.output  # type: ignore[attr-defined]
    h = np.load(out)
    side = json.loads((tmp_path / "h.npy.json").read_text())
    assert side["ids"] == [str(EXAMPLES / "Si.cif"), "mp-22862", str(EXAMPLES / "GaAs.cif")]
    assert side["failed"] == [{"query": "missing.cif", "error": "missing.cif: file not found"}]
    enc = Encoder.load("crystalclr")
    assert side["encoder"]["name"] == "crystalclr" and side["encoder"]["hash"] == enc.hash
    assert h.shape == (3, enc.dim) and h.dtype == np.float32
    expected = enc.embed([read_structure(EXAMPLES / "Si.cif"), read_structure("mp-22862")])
    np.testing.assert_allclose(h[:2], expected, rtol=1e-5, atol=1e-6)


def test_embed_csv_and_json(tmp_path: Path) -> None:
    out = tmp_path / "h.csv"
    result = run("embed", EXAMPLES, "--out", out, "--encoder", "random:3", "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert data["schema_version"] == 1 and data["command"] == "embed" and data["shape"] == [6, 128]
    assert data["encoder"]["hash"] == Encoder.random(seed=3).hash
    assert [r["row"] for r in data["results"]] == list(range(6)) and all(r["error"] is None for r in data["results"])
    rows = list(csv.reader(out.open()))
    assert rows[0][:2] == ["id", "h0"] and len(rows[0]) == 129 and len(rows) == 7
    assert rows[1][0] == str(EXAMPLES / "BaTiO3.cif")


def test_embed_parquet(tmp_path: Path) -> None:
    out = tmp_path / "h.parquet"
    result = run("embed", EXAMPLES / "Si.cif", "--out", out, "--encoder", "random")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert result.exit_code == 2 and "needs pyarrow" in result.output  # type: ignore[attr-defined]
        assert not out.exists()
        return
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    table = pq.read_table(out)
    assert table.column_names[:2] == ["id", "h0"] and table.num_rows == 1
    meta = json.loads(table.schema.metadata[b"crystalsearch"])
    assert meta["encoder"]["hash"] == Encoder.random(seed=0).hash


@pytest.mark.parametrize("name", ["h.txt", "h"])
def test_embed_unknown_format_is_one_line(tmp_path: Path, name: str) -> None:
    result = run("embed", EXAMPLES / "Si.cif", "--out", tmp_path / name)
    assert result.exit_code == 2 and "unknown format" in result.output  # type: ignore[attr-defined]
    assert result.output.count("\n") == 1  # type: ignore[attr-defined]


def test_embed_nothing_readable_exit_2(tmp_path: Path) -> None:
    result = run("embed", tmp_path / "none.cif", "--out", tmp_path / "h.npy")
    assert result.exit_code == 2 and not (tmp_path / "h.npy").exists()
