"""What goes into an index: material ids are checked (printable, no stray spaces, new also when case is ignored)
and a damaged index is refused in one line by `index add`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crystalsearch.catalog.build import build_index
from crystalsearch.catalog.inputs import add_files, id_problem, name_structures
from crystalsearch.catalog.manifest import DB_FILE
from crystalsearch.cli import app
from crystalsearch.data import datasets
from crystalsearch.data.entries import merge_records
from crystalsearch.errors import IndexFileError
from crystalsearch.io import read_structure
from crystalsearch.model.embed import Encoder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["CRYSTALSEARCH_CACHE"] = str(tmp_path_factory.mktemp("inputs-cache"))


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Si (mp-149) and 40 more shipped MP structures."""
    mp = datasets.load("mp_structures").records
    by_id = {r.material_id: r for r in mp}
    chosen = [by_id[i] for i in dict.fromkeys(["mp-149", *(r.material_id for r in mp[:40])])]
    out = tmp_path_factory.mktemp("inputs-index") / "idx"
    build_index(merge_records([("mp_structures", chosen)]), encoder=Encoder.random(seed=0), out=out, progress=False)
    return out


@pytest.fixture()
def index_copy(index_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(index_dir, tmp_path / "copy"))


@pytest.mark.parametrize(
    ("mid", "reason"),
    [
        ("NaCl\nmp-1", "control character"),
        ("NaCl\tx", "control character"),
        ("NaCl\r", "control character"),
        ("Na\x00Cl", "control character"),
        ("Na\u2028Cl", "control character"),  # a line separator
        ("NaCl ", "leading or trailing spaces"),
        (" NaCl", "leading or trailing spaces"),
        ("   ", "empty id"),
        ("x" * 201, "at most 200"),
    ],
)
def test_malformed_ids_are_refused(mid: str, reason: str) -> None:
    nacl = read_structure(EXAMPLES / "NaCl.cif")
    named, errors = name_structures([("NaCl.cif", nacl)], ids=[mid])
    assert named == [] and len(errors) == 1 and reason in str(errors[0])
    assert id_problem(mid) is not None and id_problem("NaCl relaxed #2") is None


def test_case_variants_are_refused_in_a_batch_and_against_the_index() -> None:
    nacl, si = read_structure(EXAMPLES / "NaCl.cif"), read_structure(EXAMPLES / "Si.cif")
    named, errors = name_structures([("a.cif", nacl), ("b.cif", si)], ids=["salt", "SALT"])
    assert [m for m, _ in named] == ["salt"] and "'salt'" in str(errors[0]) and "case" in str(errors[0])
    named, errors = name_structures([("a.cif", si)], ids=["MP-149"], taken=["mp-149"])
    assert named == [] and "already in the index as 'mp-149'" in str(errors[0])


def test_add_refuses_bad_ids_and_adds_the_others(index_copy: Path) -> None:
    paths = [str(EXAMPLES / "NaCl.cif"), str(EXAMPLES / "Si.cif"), str(EXAMPLES / "GaAs.cif")]
    outcome = add_files(paths, index=index_copy, ids=["salt\nmp-2", "MP-149", "gallium arsenide"])
    assert outcome.report is not None and outcome.report.added == ("gallium arsenide",)
    assert [e.source for e in outcome.refused] == paths[:2] and outcome.exit_code == 2
    result = CliRunner().invoke(app, ["index", "add", paths[0], "--id", "Gallium Arsenide", "--index", str(index_copy)])
    assert result.exit_code == 2 and "'gallium arsenide'" in result.output


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_add_to_a_damaged_database_is_one_line(index_copy: Path, damage: str) -> None:
    db = index_copy / DB_FILE
    if damage == "truncated":
        with open(db, "r+b") as fh:
            fh.truncate(5000)
    else:
        db.write_bytes(os.urandom(200_000))
    with pytest.raises(IndexFileError, match=DB_FILE):
        add_files([str(EXAMPLES / "NaCl.cif")], index=index_copy)
    result = CliRunner().invoke(app, ["index", "add", str(EXAMPLES / "NaCl.cif"), "--index", str(index_copy)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert str(db) in result.output and "Traceback" not in result.output
