"""`torchrun ... -m crystalsearch novelty`: one batch checked by two processes (gloo, CPU) gives the report of
a single-process run: same rows in the same order, duplicates found across the two shares, error rows kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crystalsearch.catalog.build import build_index
from crystalsearch.data import datasets
from crystalsearch.data.entries import entry_from_record
from crystalsearch.identity.novelty_shard import merge_shares
from crystalsearch.model.embed import Encoder

FORMULAS = ("BaTiO3", "NaCl", "KCl", "GaAs", "Si")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def records() -> dict[str, Any]:
    return {r.material_id: r for r in datasets.load("mp2025").records if r.reduced_formula in FORMULAS}


def moved(structure: Any, seed: int, amount: float = 0.02) -> Any:
    """Origin shifted and every site moved by ``amount`` Å in a random direction."""
    rng = np.random.default_rng(seed)
    s = structure.copy()
    s.translate_sites(list(range(len(s))), rng.random(3), frac_coords=True, to_unit_cell=True)
    d = rng.normal(size=(len(s), 3))
    d *= amount / np.linalg.norm(d, axis=1)[:, None]
    for i, v in enumerate(d):
        s.translate_sites([i], v, frac_coords=False, to_unit_cell=True)
    return s


def write_batch(folder: Path, records: dict[str, Any]) -> None:
    """Ten files in name order; sources alternate between the two ranks, so each duplicate pair is split."""
    from pymatgen.io.cif import CifWriter

    folder.mkdir()
    rb = records["mp-22862"].structure.copy()
    rb.replace_species({"Na": "Rb"})
    structures = {
        "a_batio3.cif": moved(records["mp-2998"].structure, 1),
        "b_batio3_again.cif": moved(records["mp-2998"].structure, 2),  # rank 1: duplicate of a (rank 0)
        "c_rbcl.cif": moved(rb, 3),
        "d_rbcl_again.cif": moved(rb, 4),  # a novel duplicate across the shares
        "f_batio3_p4mm.cif": moved(records["mp-5986"].structure, 5),
        "g_nacl.cif": moved(records["mp-22862"].structure, 6),
        "h_gaas.cif": moved(records["mp-2534"].structure, 7),
        "i_si.cif": moved(records["mp-149"].structure, 8),
        "j_nacl_again.cif": moved(records["mp-22862"].structure, 9),  # known as g's entry
    }
    for name, s in structures.items():
        CifWriter(s).write_file(folder / name)
    (folder / "e_broken.cif").write_text("data_x\n_cell_length_a 4.0\n")


def run_novelty(args: list[str], env: dict[str, str], *, ranks: int) -> dict[str, Any]:
    launch = [sys.executable, "-m", "crystalsearch"]
    if ranks > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
                  "-m", "crystalsearch"]  # fmt: skip
    proc = subprocess.run([*launch, "novelty", *args, "--json"], env=env, capture_output=True, text=True, timeout=300)
    return {"rc": proc.returncode, "json": json.loads(proc.stdout), "stderr": proc.stderr}


def test_two_ranks_give_the_single_process_report(tmp_path: Path, records: dict[str, Any]) -> None:
    chosen = [r for r in records.values() if r.num_sites <= 16]
    index = tmp_path / "idx"
    build_index([entry_from_record(r, source="mp2025") for r in chosen], encoder=Encoder.random(seed=0), out=index,
                progress=False, chunk_size=64)  # fmt: skip
    folder = tmp_path / "cands"
    write_batch(folder, records)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CRYSTALSEARCH_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    args = [str(folder), "--index", str(index), "--workers", "1"]
    single = run_novelty(args, env, ranks=1)
    sharded = run_novelty(args, env, ranks=2)
    assert single["rc"] == 2 and sharded["rc"] == 1  # the broken file (torchrun turns a rank's 2 into 1)
    assert single["json"] == sharded["json"]  # one JSON object on stdout: rank 1 printed nothing
    rows = {Path(r["query"]).name: r for r in sharded["json"]["results"]}
    assert len(rows) == 10 and rows["e_broken.cif"]["status"] == "error" and rows["e_broken.cif"]["error"]
    assert rows["b_batio3_again.cif"]["duplicate_of"] == str(folder / "a_batio3.cif")
    assert rows["d_rbcl_again.cif"]["duplicate_of"] == str(folder / "c_rbcl.cif")
    assert rows["c_rbcl.cif"]["status"] == "novel" and rows["a_batio3.cif"]["material_id"] == "mp-2998"
    assert rows["j_nacl_again.cif"]["duplicate_of"] == str(folder / "g_nacl.cif")
    assert rows["f_batio3_p4mm.cif"]["material_id"] == "mp-5986" and rows["f_batio3_p4mm.cif"]["unique"]


def test_a_source_checked_by_two_ranks_is_an_error() -> None:
    from crystalsearch.errors import CrystalSearchError

    row = {"label": "x.cif", "status": "novel", "reason": "", "pairs": 0}
    assert [c.label for c in merge_shares([{"x.cif": [dict(row)]}, {}])["x.cif"]] == ["x.cif"]
    with pytest.raises(CrystalSearchError, match="two ranks"):
        merge_shares([{"x.cif": [dict(row)]}, {"x.cif": [dict(row)]}])
