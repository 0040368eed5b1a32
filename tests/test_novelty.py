"""Known verdicts (the Materials Project's criterion) and `crystalsearch novelty`, on real 2025 MP structures.

The test index holds all 11 BaTiO3 materials of the 2025 release (cubic mp-2998 and its polymorphs), the
NaCl, KCl, TiO2, GaAs and Si materials, 150 other small materials, and one deliberate catalog duplicate
(``dup-NaCl``: mp-22862 re-celled and moved by 0.01 Å).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from crystalsearch.catalog.build import build_index
from crystalsearch.cli import app
from crystalsearch.data import datasets
from crystalsearch.data.entries import entries_from_structures, entry_from_record
from crystalsearch.errors import InputError
from crystalsearch.identity.catalog import Catalog
from crystalsearch.identity.known import KnownChecker, MatchCriterion
from crystalsearch.identity.novelty import check_novelty
from crystalsearch.model.embed import Encoder

FORMULAS = ("BaTiO3", "NaCl", "KCl", "TiO2", "GaAs", "Si")
POLYMORPHS = ("mp-5986", "mp-5020", "mp-5777")  # P4mm, R3m, Amm2 BaTiO3 (StructureMatcher alone matches them)


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["CRYSTALSEARCH_CACHE"] = str(tmp_path_factory.mktemp("novelty-cache"))


@pytest.fixture(scope="module")
def records() -> dict[str, Any]:
    return {r.material_id: r for r in datasets.load("mp2025").records}


def moved(structure: Any, rng: np.random.Generator, amount: float) -> Any:
    """Every site moved by ``amount`` Å in a random direction."""
    s = structure.copy()
    d = rng.normal(size=(len(s), 3))
    d *= amount / np.linalg.norm(d, axis=1)[:, None]
    for i, v in enumerate(d):
        s.translate_sites([i], v, frac_coords=False, to_unit_cell=True)
    return s


def disguised(structure: Any, seed: int) -> Any:
    """Rotated, another setting of the same lattice, origin shifted, sites moved by 0.02 Å."""
    from pymatgen.core import Lattice, Structure
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    s = structure.copy()
    s.make_supercell([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    rot = Rotation.random(random_state=seed).as_matrix()
    s = Structure(Lattice(s.lattice.matrix @ rot.T), s.species, (s.frac_coords + rng.random(3)) % 1.0)
    return moved(s, rng, 0.02)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, records: dict[str, Any]) -> Path:
    chosen = [r for r in records.values() if r.reduced_formula in FORMULAS]
    small = [r for r in records.values() if r.num_sites <= 12 and r.reduced_formula not in FORMULAS]
    chosen += small[::400][:150]
    entries = [entry_from_record(r, source="mp2025") for r in chosen]
    dup = moved(records["mp-22862"].structure.copy(), np.random.default_rng(1), 0.01)
    dup.make_supercell([1, 1, 2])
    entries += entries_from_structures([("dup-NaCl", dup)], source="test")
    out = tmp_path_factory.mktemp("novelty-idx") / "idx"
    build_index(entries, encoder=Encoder.random(seed=0), out=out, progress=False, chunk_size=64)
    return out


@pytest.fixture(scope="module")
def catalog(index_dir: Path) -> Catalog:
    return Catalog.open(index_dir, encoder=Encoder.random(seed=0))


# --- the verdict ---------------------------------------------------------------------------------------
def test_polymorphs_are_never_merged(catalog: Catalog, records: dict[str, Any]) -> None:
    from crystalsearch.identity.known import fit_rms

    cubic = records["mp-2998"].structure
    for other in POLYMORPHS:  # the reason for the space-group criterion: StructureMatcher alone merges them
        assert fit_rms(cubic, records[other].structure, MatchCriterion()) is not None
    verdict = catalog.is_known(cubic)
    assert [m.material_id for m in verdict.matches] == ["mp-2998"] and verdict.spacegroup == 221
    for mid in POLYMORPHS:
        v = catalog.is_known(records[mid].structure)
        assert [m.material_id for m in v.matches] == [mid], (mid, v)


@pytest.mark.parametrize("mid", ["mp-2998", "mp-5986", "mp-22862", "mp-2657", "mp-2534", "mp-149"])
def test_disguised_copies_are_known_as_exactly_their_entry(catalog: Catalog, records: dict[str, Any], mid: str) -> None:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    s = records[mid].structure
    analyzer = SpacegroupAnalyzer(s, symprec=0.1)
    relaxed = s.copy()
    relaxed.apply_strain(0.02)  # relaxed again with other settings: 6% more volume, same symmetry
    supercell = s.copy()
    supercell.make_supercell([2, 1, 1])
    shifted = s.copy()
    shifted.translate_sites(list(range(len(s))), [0.31, 0.17, 0.43], to_unit_cell=True)  # another origin
    copies = {
        "disguised": disguised(s, 3), "conventional": analyzer.get_conventional_standard_structure(),
        "primitive": analyzer.get_primitive_standard_structure(), "supercell": supercell, "origin": shifted,
        "relaxed": relaxed, "moved 0.03 Å": moved(s, np.random.default_rng(2), 0.03),
    }  # fmt: skip
    for what, copy in copies.items():
        v = catalog.is_known(copy)
        expected = ["mp-22862", "dup-NaCl"] if mid == "mp-22862" else [mid]
        assert sorted(m.material_id for m in v.matches) == sorted(expected), (what, v)
        assert v.best is not None and v.best.rms_angstrom < 0.1 and v.text().startswith("known as ")


def test_catalog_duplicates_listed_best_first(catalog: Catalog, records: dict[str, Any]) -> None:
    v = catalog.is_known(records["mp-22862"].structure)
    assert [m.material_id for m in v.matches] == ["mp-22862", "dup-NaCl"]  # the exact copy has RMS 0
    assert v.matches[0].rms < 1e-6 < v.matches[1].rms and "holds 2 entries" in v.reason
    assert v.to_dict()["material_id"] == "mp-22862" and len(v.to_dict()["matches"]) == 2


def test_novel_reasons_and_tolerances(catalog: Catalog, records: dict[str, Any]) -> None:
    nacl = records["mp-22862"].structure.copy()
    rb = nacl.copy()
    rb.replace_species({"Na": "Rb"})  # RbCl: no material with this formula in the test index
    v = catalog.is_known(rb)
    assert not v.known and v.text() == "novel" and "no catalog material with formula RbCl" in v.reason
    distorted = nacl.copy()
    distorted.apply_strain([0.06, -0.04, 0.0])  # another space group: not the same material
    v = catalog.is_known(distorted)
    assert not v.known and "0 in space group" in v.reason
    assert v.loose and all(1 <= n <= 230 for n in v.loose)  # the looser space groups tried, kept for the grouping
    strict = KnownChecker(catalog, MatchCriterion(stol=0.001))
    jiggled = moved(nacl, np.random.default_rng(0), 0.03)
    assert not strict.check(jiggled).known and KnownChecker(catalog).check(jiggled).known
    assert catalog.is_known("mp-22862").best.material_id == "mp-22862"  # type: ignore[union-attr]


# --- novelty of a batch --------------------------------------------------------------------------------
def write_candidates(folder: Path, records: dict[str, Any]) -> None:
    from pymatgen.io.cif import CifWriter

    folder.mkdir()
    CifWriter(disguised(records["mp-2998"].structure, 1)).write_file(folder / "a_batio3.cif")
    CifWriter(disguised(records["mp-2998"].structure, 2)).write_file(folder / "b_batio3_again.cif")
    CifWriter(disguised(records["mp-5986"].structure, 3)).write_file(folder / "c_batio3_p4mm.cif")
    rb = records["mp-22862"].structure.copy()
    rb.replace_species({"Na": "Rb"})
    CifWriter(rb).write_file(folder / "d_rbcl.cif")
    (folder / "e_broken.cif").write_text("data_x\n_cell_length_a 4.0\n")
    sub = folder / "more"
    sub.mkdir()
    pair = [disguised(records["mp-2657"].structure, 4).as_dict(), disguised(records["mp-149"].structure, 5).as_dict()]
    (sub / "f_two.json").write_text(json.dumps(pair))


def test_novelty_batch_unique_known_novel(tmp_path: Path, index_dir: Path, records: dict[str, Any]) -> None:
    folder = tmp_path / "cands"
    write_candidates(folder, records)
    report = check_novelty([str(folder)], index=str(index_dir))
    by = {Path(c.label).name: c for c in report.candidates}
    assert by["a_batio3.cif"].status == "known" and by["a_batio3.cif"].material_id == "mp-2998"
    assert by["b_batio3_again.cif"].duplicate_of == str(folder / "a_batio3.cif")
    assert by["c_batio3_p4mm.cif"].material_id == "mp-5986" and by["c_batio3_p4mm.cif"].duplicate_of is None
    assert by["d_rbcl.cif"].status == "novel" and by["e_broken.cif"].status == "error"
    assert [by[f"f_two.json#{i}"].material_id for i in (0, 1)] == ["mp-2657", "mp-149"]
    summary = "7 candidates: 5 unique (4 known, 1 novel), 1 duplicates of other candidates, 1 unreadable"
    assert report.summary() == summary
    assert sum(c.pairs for c in report.candidates) <= 8  # StructureMatcher only on pairs that survive the keys


def test_novelty_resumes_from_its_journal(tmp_path: Path, index_dir: Path, records: dict[str, Any]) -> None:
    folder = tmp_path / "cands"
    write_candidates(folder, records)
    journal = tmp_path / "novelty.jsonl"
    first = check_novelty([str(folder)], index=str(index_dir), journal=journal)
    with journal.open("a") as fh:
        fh.write('{"source": "torn')  # an interrupted append
    again = check_novelty([str(folder)], index=str(index_dir), journal=journal)
    assert again.resumed == 6 and again.candidates == first.candidates  # none of the 6 files checked again
    shutil.copy(folder / "d_rbcl.cif", folder / "a_batio3.cif")  # a changed file is checked again
    third = check_novelty([str(folder)], index=str(index_dir), journal=journal, workers=2, chunk_files=1)
    assert third.resumed == 5 and {Path(c.label).name: c.status for c in third.candidates}["a_batio3.cif"] == "novel"


@pytest.fixture(scope="module")
def journal_run(tmp_path_factory: pytest.TempPathFactory, index_dir: Path, records: dict[str, Any]) -> tuple:
    """Candidates, the journal of a finished run over them and its report."""
    root = tmp_path_factory.mktemp("journal")
    write_candidates(root / "cands", records)
    report = check_novelty([str(root / "cands")], index=str(index_dir), journal=root / "novelty.jsonl")
    return root / "cands", root / "novelty.jsonl", report


def _journal_copy(done: Path, folder: Path) -> tuple[Path, list[bytes]]:
    """A copy of a finished run's journal in ``folder``, and its lines."""
    journal = Path(shutil.copy(done, folder / "novelty.jsonl"))
    return journal, journal.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize(
    "last",
    [
        b"\xff\xfe garbled \x80\n",  # not UTF-8
        b'{"source": "x", "sha256": "y", "candidates": [{"bogus": 1}]}\n',  # JSON of another shape
        b'["a", "list"]\n',
        b'{"source": "x", "sha256": "y", "candidates": [{"label": "x", "status": "known", "pairs": "many"}]}\n',
    ],
)
def test_torn_last_journal_line_is_dropped_with_a_warning(
    tmp_path: Path, index_dir: Path, journal_run: tuple[Path, Path, Any], last: bytes
) -> None:
    folder, done, first = journal_run
    journal, lines = _journal_copy(done, tmp_path)
    journal.write_bytes(b"".join(lines[:-1]) + last)  # the last file's line replaced by garbage
    warnings: list[str] = []
    again = check_novelty([str(folder)], index=str(index_dir), journal=journal, notify=warnings.append)
    assert again.resumed == 5 and again.candidates == first.candidates  # only the dropped file checked again
    assert len(warnings) == 1 and str(journal) in warnings[0] and f"line {len(lines)}" in warnings[0]
    assert "\n" not in warnings[0]


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x80\n", b"not json\n", b'{"source": 1}\n'])
def test_damage_inside_the_journal_is_one_clear_line(
    tmp_path: Path, index_dir: Path, journal_run: tuple[Path, Path, Any], garbage: bytes
) -> None:
    folder, done, _ = journal_run
    journal, lines = _journal_copy(done, tmp_path)
    journal.write_bytes(b"".join([*lines[:2], garbage, *lines[2:]]))
    with pytest.raises(InputError, match="line 3") as err:
        check_novelty([str(folder)], index=str(index_dir), journal=journal)
    assert str(err.value).startswith(f"{journal}: ") and "\n" not in str(err.value)
    result = CliRunner().invoke(app, ["novelty", str(folder), "--index", str(index_dir), "--journal", str(journal)])
    assert result.exit_code == 2 and str(journal) in result.output and "Traceback" not in result.output


def test_novelty_cli_json_csv_and_exit_code(tmp_path: Path, index_dir: Path, records: dict[str, Any]) -> None:
    folder = tmp_path / "cands"
    write_candidates(folder, records)
    runner = CliRunner()
    out_csv = tmp_path / "rows.csv"
    result = runner.invoke(app, ["novelty", str(folder), "--index", str(index_dir), "--json", "--csv", str(out_csv)])
    assert result.exit_code == 2  # one input failed
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and data["command"] == "novelty" and data["unique"] == 5
    assert data["known"] == 4 and data["novel"] == 1 and data["errors"] == 1 and data["criterion"]["stol"] == 0.3
    rows = {Path(r["query"]).name: r for r in data["results"]}
    assert rows["e_broken.cif"]["error"] and rows["a_batio3.cif"]["material_id"] == "mp-2998"
    assert rows["b_batio3_again.cif"]["unique"] is False and rows["d_rbcl.cif"]["status"] == "novel"
    assert out_csv.read_text().count("\n") == 8
    plain = runner.invoke(app, ["novelty", str(folder / "a_batio3.cif"), "--index", str(index_dir)])
    assert plain.exit_code == 0 and "mp-2998" in plain.stdout


def test_similar_known_shows_the_verdict_in_its_own_column(catalog: Catalog, records: dict[str, Any]) -> None:
    from rich.console import Console

    from crystalsearch.cli.similar import render_table

    (result,) = catalog.search([disguised(records["mp-5986"].structure, 7)], k=4, known=True)
    out = Console(record=True, width=220, force_terminal=True)
    render_table(result, units={}, out=out)
    text = out.export_text()
    assert "known" in text.splitlines()[2] and "same material (RMS" in text and "known as mp-5986" in text
    sims = [h.similarity for h in result.hits]
    assert sims == sorted(sims, reverse=True) and result.known_as == ("mp-5986",)
    assert result.to_dict()["known"]["material_id"] == "mp-5986"


# --- identity under noise ------------------------------------------------------------------------------
def _as_candidate(label: str, structure: Any, criterion: MatchCriterion) -> Any:
    from crystalsearch.data.entries import structure_to_json
    from crystalsearch.identity.known import query_key
    from crystalsearch.identity.novelty import Candidate

    key = query_key(structure, symprec=criterion.symprec)
    text = structure_to_json(structure.lattice.matrix, [s.specie.symbol for s in structure], structure.frac_coords)
    return Candidate(label, "novel", key.formula, key.spacegroup, structure=text)


NOISY = ("mp-2998", "mp-5986", "mp-5020", "mp-5777", "mp-2657", "mp-22862", "mp-1143", "mp-2133")


def test_duplicates_found_through_noise_and_polymorphs_kept_apart(records: dict[str, Any]) -> None:
    """Two copies of each material, rotated, re-celled and moved by up to 0.04 Å (noise that lowers the space
    group spglib finds, differently for the two): every second copy is a duplicate of the first, and BaTiO3's
    four polymorphs (which StructureMatcher alone merges) stay four materials."""
    from crystalsearch.identity.novelty import group_duplicates

    criterion = MatchCriterion()
    firsts, seconds = [], []
    for n, mid in enumerate(NOISY):
        s = records[mid].structure
        firsts.append(_as_candidate(f"{mid}#a", moved(disguised(s, n), np.random.default_rng(n), 0.02), criterion))
        second = moved(disguised(s, 50 + n), np.random.default_rng(50 + n), 0.02)
        seconds.append(_as_candidate(f"{mid}#b", second, criterion))
    lowered = sum(1 for a, b in zip(firsts, seconds) if a.spacegroup != b.spacegroup)
    assert lowered >= 2  # the noise path is exercised: the two copies' space groups differ at symprec 0.1
    grouped = {c.label: c for c in group_duplicates(firsts + seconds, criterion)}
    assert all(grouped[f"{mid}#b"].duplicate_of == f"{mid}#a" for mid in NOISY), grouped
    assert all(grouped[f"{mid}#a"].duplicate_of is None for mid in NOISY)
    strict = {c.label: c for c in group_duplicates(firsts + seconds, MatchCriterion(noise_symprec=None))}
    assert sum(1 for mid in NOISY if strict[f"{mid}#b"].duplicate_of is None) >= 1  # what the noise rule fixes


def test_known_candidates_group_by_their_entry(tmp_path: Path, index_dir: Path, records: dict[str, Any]) -> None:
    from pymatgen.io.cif import CifWriter

    folder = tmp_path / "noisy"
    folder.mkdir()
    for n in range(4):
        copy = moved(disguised(records["mp-2657"].structure, 20 + n), np.random.default_rng(n), 0.03)
        CifWriter(copy).write_file(folder / f"tio2_{n}.cif")
    report = check_novelty([str(folder)], index=str(index_dir))
    by = {Path(c.label).name: c for c in report.candidates}
    assert {c.material_id for c in by.values()} == {"mp-2657"}
    assert [by[f"tio2_{n}.cif"].duplicate_of for n in range(4)] == [None] + [str(folder / "tio2_0.cif")] * 3


def test_similar_ranks_a_noisy_copy_first(catalog: Catalog, records: dict[str, Any]) -> None:
    """A copy whose space group (and prototype label) noise lowered keeps the catalog's label for the ranking,
    and its own entry ranks first (the verdict marks the same material and lists it first)."""
    from crystalsearch.catalog.catalog import _prototype_of

    changed = 0
    for n, mid in enumerate(("mp-2657", "mp-5986", "mp-2998", "mp-5777")):
        copy = moved(disguised(records[mid].structure, n), np.random.default_rng(n), 0.03)
        own = catalog.db.materials([catalog.row_of(mid)])[catalog.row_of(mid)].prototype
        changed += _prototype_of(copy) != own
        assert catalog._query_prototype(copy, records[mid].reduced_formula) == own, mid
        (result,) = catalog.search([copy], k=3, known=True)
        assert result.hits[0].material_id == mid and result.hits[0].same_structure, (mid, result.hits)
    assert changed >= 1  # at least one copy lost its label at symprec 0.1


def test_novelty_report_json_and_chart(tmp_path: Path, index_dir: Path, records: dict[str, Any]) -> None:
    folder = tmp_path / "cands"
    write_candidates(folder, records)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["novelty", str(folder), "--index", str(index_dir), "--report", str(out)])
    assert result.exit_code == 2  # the broken file is an error row, the batch went on
    data = json.loads(out.read_text())
    overall = data["overall"]
    assert (overall["candidates"], overall["valid"], overall["unique"]) == (7, 6, 5)
    assert (overall["novel"], overall["unique_and_novel"]) == (1, 1) and overall["unique_rate"] == round(5 / 7, 6)
    assert data["by_element"]["Rb"]["unique_and_novel"] == 1 and data["by_element"]["Ba"]["unique"] == 2
    assert data["by_spacegroup"]["221"]["candidates"] == 2 and data["criterion"]["stol"] == 0.3
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_several_reference_indexes(tmp_path: Path, index_dir: Path, records: dict[str, Any]) -> None:
    """A second index (one's own DFT set: here RbCl, absent from the first) turns its material known; the
    first index's verdicts stand."""
    from pymatgen.io.cif import CifWriter

    rb = records["mp-22862"].structure.copy()
    rb.replace_species({"Na": "Rb"})
    own = tmp_path / "own"
    build_index(entries_from_structures([("my-RbCl", rb)], source="test"), encoder=Encoder.random(seed=0), out=own,
                progress=False)  # fmt: skip
    folder = tmp_path / "cands"
    write_candidates(folder, records)
    CifWriter(disguised(rb, 9)).write_file(folder / "g_rbcl_again.cif")
    runner = CliRunner()
    result = runner.invoke(app, ["novelty", str(folder), "--index", str(index_dir), "--index", str(own), "--json"])
    data = json.loads(result.stdout)
    rows = {Path(r["query"]).name: r for r in data["results"]}
    assert rows["d_rbcl.cif"]["status"] == "known" and rows["d_rbcl.cif"]["material_id"] == "my-RbCl"
    assert rows["g_rbcl_again.cif"]["duplicate_of"].endswith("d_rbcl.cif")
    assert rows["a_batio3.cif"]["material_id"] == "mp-2998" and data["novel"] == 0 and data["known"] == 5


def test_representations_only_where_a_key_leaves_too_many(
    tmp_path: Path, index_dir: Path, records: dict[str, Any]
) -> None:
    """Candidates are embedded only where their formula has more catalog entries, or more candidates in the
    batch, than StructureMatcher compares (``max_pairs``); the verdicts do not depend on it."""
    from pymatgen.io.cif import CifWriter

    folder = tmp_path / "nacl"
    folder.mkdir()
    for n in range(3):  # NaCl: 4 indexed entries (3 MP materials and a noisy copy of mp-22862)
        copy = moved(disguised(records["mp-22862"].structure, 40 + n), np.random.default_rng(n), 0.02)
        CifWriter(copy).write_file(folder / f"nacl_{n}.cif")
    plain = check_novelty([str(folder)], index=str(index_dir))
    ranked = check_novelty([str(folder)], index=str(index_dir), criterion=MatchCriterion(max_pairs=1))
    assert all(c.vector is None for c in plain.candidates)  # every NaCl entry is compared: no ranking needed
    assert all(c.vector is not None and np.linalg.norm(c.vector) > 0.5 for c in ranked.candidates)
    for report in (plain, ranked):
        assert [c.status for c in report.candidates] == ["known"] * 3
        assert [c.duplicate_of is None for c in report.candidates] == [True, False, False]
    assert plain.candidates[0].material_id in ("mp-22862", "dup-NaCl")
