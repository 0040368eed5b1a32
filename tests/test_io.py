"""Structure I/O on real files: round trips, multi-block CIFs, folders, globs, MP ids and bad inputs."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from crystalsearch.errors import InputError
from crystalsearch.io import ReadReport, check_structure, read_structure, read_structures

pytest.importorskip("pymatgen.core")

from pymatgen.core import Lattice, Structure  # noqa: E402
from pymatgen.io.cif import CifWriter  # noqa: E402
from pymatgen.io.vasp import Poscar  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Site labels are not unique")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
EDGE_CASES = Path(__file__).resolve().parent / "data" / "cif_edge_cases"  # copies of ../shared/data/cif_edge_cases


@pytest.fixture(scope="module")
def nacl() -> Structure:
    return read_structure(EXAMPLES / "NaCl.cif")


def assert_same_structure(a: Structure, b: Structure, *, compare_matrix: bool = True) -> None:
    """Same lattice, species and fractional coordinates (within 1e-6), up to site order."""
    if compare_matrix:
        np.testing.assert_allclose(a.lattice.matrix, b.lattice.matrix, atol=1e-6)
    np.testing.assert_allclose(a.lattice.abc, b.lattice.abc, atol=1e-6)
    np.testing.assert_allclose(a.lattice.angles, b.lattice.angles, atol=1e-6)
    assert len(a) == len(b)
    unmatched = list(range(len(b)))
    for site in a:
        for k in unmatched:
            delta = site.frac_coords - b[k].frac_coords
            if site.specie == b[k].specie and np.abs(delta - np.round(delta)).max() < 1e-6:
                unmatched.remove(k)
                break
        else:
            raise AssertionError(f"no counterpart for {site}")


# --- good inputs ------------------------------------------------------------------------------------


def test_examples_are_real_and_readable() -> None:
    found = dict(read_structures(EXAMPLES))
    formulas = {Path(k).stem: s.composition.reduced_formula for k, s in found.items()}
    assert formulas == {
        "BaTiO3": "BaTiO3",
        "GaAs": "GaAs",
        "LiFePO4": "LiFePO4",
        "NaCl": "NaCl",
        "Si": "Si",
        "TiO2_rutile": "TiO2",
    }
    assert list(found) == sorted(found)
    assert found[str(EXAMPLES / "NaCl.cif")].get_space_group_info()[1] == 225


@pytest.mark.parametrize("fmt", ["cif", "poscar", "json", "json_list", "cif_gz"])
def test_round_trip(nacl: Structure, tmp_path: Path, fmt: str) -> None:
    rattled = nacl.copy()
    rattled.perturb(0.05, min_distance=0.01)  # break symmetry so that site order/merging matters
    if fmt == "cif":
        path = tmp_path / "NaCl.cif"
        CifWriter(rattled).write_file(path)
    elif fmt == "cif_gz":
        import gzip

        path = tmp_path / "NaCl.cif.gz"
        path.write_bytes(gzip.compress(str(CifWriter(rattled)).encode()))
    elif fmt == "poscar":
        path = tmp_path / "POSCAR"
        Poscar(rattled).write_file(path)
    elif fmt == "json":
        path = tmp_path / "NaCl.json"
        path.write_text(json.dumps(rattled.as_dict()))
    else:
        path = tmp_path / "two.json"
        path.write_text(json.dumps([rattled.as_dict(), nacl.as_dict()]))

    items = list(read_structures(path))
    if fmt == "json_list":
        assert [sid for sid, _ in items] == [f"{path}#0", f"{path}#1"]
        assert_same_structure(items[1][1], nacl)
    else:
        assert [sid for sid, _ in items] == [str(path)]
    assert_same_structure(items[0][1], rattled, compare_matrix=not fmt.startswith("cif"))


def test_vasp_suffix_and_unknown_name_is_sniffed(nacl: Structure, tmp_path: Path) -> None:
    Poscar(nacl).write_file(tmp_path / "nacl.vasp")
    (tmp_path / "nacl.txt").write_text(str(CifWriter(nacl)))
    assert_same_structure(read_structure(tmp_path / "nacl.vasp"), nacl)
    assert_same_structure(read_structure(str(tmp_path / "nacl.txt")), nacl, compare_matrix=False)


def test_multi_block_cif(tmp_path: Path) -> None:
    path = tmp_path / "both.cif"
    path.write_text((EXAMPLES / "NaCl.cif").read_text() + "\n" + (EXAMPLES / "Si.cif").read_text())
    items = list(read_structures(path))
    assert [sid for sid, _ in items] == [f"{path}#NaCl", f"{path}#Si"]
    assert [s.composition.reduced_formula for _, s in items] == ["NaCl", "Si"]


def test_multi_block_cif_duplicate_names(tmp_path: Path) -> None:
    path = tmp_path / "twice.cif"
    path.write_text((EXAMPLES / "Si.cif").read_text() * 2)
    assert [sid for sid, _ in read_structures(path)] == [f"{path}#Si", f"{path}#Si-2"]


def test_folder_recursive_and_glob(nacl: Structure, tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    CifWriter(nacl).write_file(tmp_path / "b.cif")
    CifWriter(nacl).write_file(tmp_path / "sub" / "a.cif")
    Poscar(nacl).write_file(tmp_path / "sub" / "deeper" / "CONTCAR")
    (tmp_path / "notes.txt").write_text("not a structure")
    (tmp_path / ".hidden.cif").write_text("")
    ids = [sid for sid, _ in read_structures(tmp_path)]
    assert ids == [str(tmp_path / "b.cif"), str(tmp_path / "sub/a.cif"), str(tmp_path / "sub/deeper/CONTCAR")]
    globbed = [sid for sid, _ in read_structures(str(tmp_path / "**" / "*.cif"))]
    assert globbed == [str(tmp_path / "b.cif"), str(tmp_path / "sub/a.cif")]
    mixed = [sid for sid, _ in read_structures([tmp_path / "b.cif", str(EXAMPLES / "Si*.cif")])]
    assert mixed == [str(tmp_path / "b.cif"), str(EXAMPLES / "Si.cif")]


def test_mp_ids() -> None:
    pytest.importorskip("crystalsearch.data.datasets")
    items = dict(read_structures(["mp-149", "mp-22862"]))
    assert items["mp-149"].composition.reduced_formula == "Si"
    assert items["mp-22862"].composition.reduced_formula == "NaCl"
    assert read_structure("mp-149").get_space_group_info()[1] == 227
    with pytest.raises(InputError, match=r"^mp-999999999: unknown Materials Project id"):
        read_structure("mp-999999999")


def test_mp_id_from_elasticity_only() -> None:
    datasets = pytest.importorskip("crystalsearch.data.datasets")
    in_mp = {r.material_id for r in datasets.load("mp_structures").records}
    only = next(r for r in datasets.load("mp_elasticity").records if r.material_id not in in_mp)
    structure = read_structure(only.material_id)
    assert structure.composition.reduced_formula == only.structure.composition.reduced_formula


# --- bad inputs ----------------------------------------------------------------------------------


def _cif_text(structure: Structure) -> str:
    return str(CifWriter(structure))


def _bad_files(nacl: Structure, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, regex the reason must match)."""
    p1 = _cif_text(nacl)
    big = nacl.copy()
    big.make_supercell([4, 4, 5])  # 640 sites
    disordered = nacl.copy()
    disordered.replace_species({"Na": {"Na": 0.5, "K": 0.5}})
    overlapping = nacl.copy()
    overlapping.append("Na", overlapping[0].coords + np.array([0.3, 0.0, 0.0]), coords_are_cartesian=True)
    no_cell = "\n".join(line for line in p1.splitlines() if not line.startswith("_cell_"))
    no_atoms = p1.split("loop_\n _atom_site")[0]
    tiny = Structure(Lattice.from_parameters(0.1, 5, 5, 90, 90, 90), ["Si"], [[0, 0, 0]])
    huge = Structure(Lattice.cubic(1e7 ** (1 / 3)), ["Si"], [[0, 0, 0]])
    cases = {
        "empty": ("", r"empty file"),
        "truncated": (p1[: len(p1) // 2], r"truncated|no atoms"),
        "no_cell": (no_cell, r"no lattice: missing cell parameter\(s\) _cell_length_a"),
        "no_atoms": (no_atoms, r"no atoms"),
        "tiny": (_cif_text(tiny), r"absurd cell: lattice length a = 0\.1 Å is below 0\.5 Å"),
        "huge": (_cif_text(huge), r"absurd cell: 1e\+07 Å\^3 per atom exceeds 10,000 Å\^3"),
        "flat": (p1.replace("_cell_angle_gamma   90.00000000", "_cell_angle_gamma   0.0001"), r"absurd cell"),
        "too_many": (
            _cif_text(big),
            r"640 sites is over the limit of 500 per structure; raise it with "
            r"`crystalsearch --max-query-sites N <command>`",
        ),
        "disordered": (
            _cif_text(disordered),
            r"disordered structure \(partial occupancy on 4 sites\); crystalsearch needs an ordered "
            r"structure — order it first, e.g. pymatgen OrderDisorderedStructureTransformation",
        ),
        "overlap": (
            _cif_text(overlapping),
            r"overlapping atoms: sites \d+ \(Na\) and \d+ \(Na\) are 0\.3 Å apart",
        ),
        "not_a_cif": ("just some words\nand more words\n", r"no data_ block"),
        "bad_number": (p1.replace("_cell_length_b   5.69169403", "_cell_length_b   five"), r"_cell_length_b"),
        "no_angles": (
            "\n".join(line for line in p1.splitlines() if not line.startswith("_cell_angle_g")),
            r"no lattice: missing cell parameter\(s\) _cell_angle_gamma",
        ),
        "dummy": (p1.replace(" Cl  Cl1 ", " Xx  Xx1 "), r"unknown element 'Xx'"),
    }
    files: dict[str, tuple[Path, str]] = {}
    for name, (text, reason) in cases.items():
        path = tmp_path / f"{name}.cif"
        path.write_text(text)
        files[name] = (path, reason)
    junk = tmp_path / "junk.cif"
    junk.write_bytes(os.urandom(2048) + b"\x00")
    files["junk"] = (junk, r"binary file")
    for name, text, reason in [
        ("bad_json.json", '{"lattice": ', r"invalid JSON"),
        ("molecule.json", json.dumps({"sites": [], "charge": 0}), r"no lattice"),
        ("other.json", json.dumps({"hello": 1}), r"not a pymatgen Structure"),
        ("POSCAR_truncated", Poscar(nacl).get_str()[:60], r"truncated POSCAR"),
        ("CONTCAR_cut", "\n".join(Poscar(nacl).get_str().splitlines()[:11]), r"truncated POSCAR"),
        ("disordered.json", json.dumps(disordered.as_dict()), r"disordered structure"),
    ]:
        path = tmp_path / name
        path.write_text(text)
        files[name] = (path, reason)
    return files


def test_each_bad_input_gives_one_line_error(nacl: Structure, tmp_path: Path) -> None:
    for name, (path, reason) in _bad_files(nacl, tmp_path).items():
        with pytest.raises(InputError) as info:
            list(read_structures(path))
        message = str(info.value)
        assert message.startswith(f"{path}: "), (name, message)
        assert "\n" not in message and "Traceback" not in message, (name, message)
        assert re.search(reason, info.value.reason), (name, message)


def test_parse_time_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import signal

    from crystalsearch.io import readers

    if signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0):
        pytest.skip("the interval timer is in use (e.g. by a test-timeout plugin)")

    def hang(text: str, *, source: str) -> None:
        while True:
            time.sleep(0.01)

    monkeypatch.setattr(readers, "iter_cif_blocks", hang)
    monkeypatch.setattr(readers, "PARSE_TIME_LIMIT_S", 0.2)
    path = tmp_path / "slow.cif"
    path.write_text((EXAMPLES / "Si.cif").read_text())
    with pytest.raises(InputError, match=r"slow\.cif: parsing took longer than 0\.2 s"):
        read_structure(path)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL


def test_missing_inputs(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no structures here")
    with pytest.raises(InputError, match=r": no structure files in this folder"):
        read_structure(tmp_path)
    with pytest.raises(InputError, match=r"^no/such/file\.cif: file not found$"):
        read_structure("no/such/file.cif")
    with pytest.raises(InputError, match=r"no files match this pattern"):
        read_structure("no/such/dir/*.cif")


def test_max_sites_option(nacl: Structure) -> None:
    with pytest.raises(InputError, match=r"8 sites is over the limit of 4 per structure.*--max-query-sites"):
        check_structure(nacl, source="x", max_sites=4)
    check_structure(nacl, source="x", max_sites=8)
    assert len(read_structure(EXAMPLES / "LiFePO4.cif", max_sites=28)) == 28


def test_batch_skips_bad_files(nacl: Structure, tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    bad = _bad_files(nacl, tmp_path / "bad")
    good = tmp_path / "good.cif"
    CifWriter(nacl).write_file(good)
    report = ReadReport()
    inputs: list[str | Path] = [good, *(path for path, _ in bad.values()), "missing.cif", EXAMPLES / "Si.cif"]
    ids = [sid for sid, _ in read_structures(inputs, report=report)]
    assert ids == [str(good), str(EXAMPLES / "Si.cif")]
    assert report.ok == 2
    assert [err.source for err in report.failed] == [*(str(p) for p, _ in bad.values()), "missing.cif"]
    assert report.exit_code == 2

    clean = ReadReport()
    assert len(list(read_structures(EXAMPLES, report=clean))) == 6
    assert (clean.ok, clean.failed, clean.exit_code) == (6, [], 0)


def test_strict_and_no_report_raise_first_error(nacl: Structure, tmp_path: Path) -> None:
    empty = tmp_path / "empty.cif"
    empty.write_text("")
    inputs = [EXAMPLES / "Si.cif", empty, EXAMPLES / "NaCl.cif"]
    for kwargs in ({"strict": True, "report": ReadReport()}, {}):
        got = []
        with pytest.raises(InputError, match="empty file"):
            for sid, _ in read_structures(inputs, **kwargs):  # type: ignore[arg-type]
                got.append(sid)
        assert got == [str(EXAMPLES / "Si.cif")]


# --- real-world edge cases (pymatgen's test suite) -------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in EDGE_CASES.glob("*.cif")))
def test_edge_case_cifs_terminate_with_structure_or_one_line_error(name: str) -> None:
    path = EDGE_CASES / name
    report = ReadReport()
    start = time.perf_counter()
    items = list(read_structures(path, report=report))
    assert time.perf_counter() - start < 10
    assert items or report.failed
    for err in report.failed:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
    for _, structure in items:
        check_structure(structure, source=name)


def test_superflat_cell_rejected_before_parsing() -> None:
    with pytest.raises(InputError, match=r"bad_superflat_inf_loop\.cif: absurd cell: .* per atom is below 1"):
        read_structure(EDGE_CASES / "bad_superflat_inf_loop.cif")


def test_pauling_file_blocks_each_reported() -> None:
    path = EDGE_CASES / "PF_sd_1601634.cif"
    report = ReadReport()
    assert list(read_structures(path, report=report)) == []
    reasons = {err.source: err.reason for err in report.failed}
    assert set(reasons) == {
        f"{path}#sm_isp_SD1601634-standardized_unitcell",
        f"{path}#sm_isp_SD1601634-published_cell",
    }
    assert "OH" in reasons[f"{path}#sm_isp_SD1601634-standardized_unitcell"]
    assert "no atoms" in reasons[f"{path}#sm_isp_SD1601634-published_cell"]


def test_the_site_limit_message_names_the_option_that_raises_it(
    tmp_path: Path, nacl: Structure, monkeypatch: pytest.MonkeyPatch
) -> None:
    """640 sites (a 4x4x5 NaCl supercell) are refused by default; `crystalsearch --max-query-sites N` raises the
    limit for the command (and its worker processes, through the environment); search's --max-sites does not."""
    from typer.testing import CliRunner

    from crystalsearch.cli import app
    from crystalsearch.io.checks import MAX_SITES_ENV

    monkeypatch.delenv(MAX_SITES_ENV, raising=False)
    big = tmp_path / "big.cif"
    big.write_text(_cif_text(nacl * (4, 4, 5)))
    out = tmp_path / "e.npy"
    result = CliRunner().invoke(app, ["embed", str(big), "--encoder", "random", "--out", str(out)])
    assert result.exit_code == 2 and "--max-query-sites" in result.output and not out.exists()
    try:
        result = CliRunner().invoke(app, ["--max-query-sites", "700", "embed", str(big), "--encoder", "random",
                                          "--out", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert out.exists() and len(read_structure(big)) == 640
    finally:
        monkeypatch.delenv(MAX_SITES_ENV, raising=False)
    monkeypatch.setenv(MAX_SITES_ENV, "lots")
    with pytest.raises(InputError, match=f"{MAX_SITES_ENV}: must be a whole number"):
        read_structure(big)
