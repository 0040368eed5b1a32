"""Inputs are never misread: POSCAR counts vs coordinate lines, CIF numbers with stray bytes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from crystalsearch.errors import InputError
from crystalsearch.io import ReadReport, read_structure, read_structures

if TYPE_CHECKING:
    from pymatgen.core import Structure

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _poscar(nacl: Structure, counts: str) -> str:
    from pymatgen.io.vasp import Poscar

    lines = Poscar(nacl).get_str().splitlines()
    assert lines[6].split() == ["4", "4"]  # species on line 6, counts on line 7
    lines[6] = counts
    return "\n".join(lines) + "\n"


def test_poscar_counts_fewer_than_coordinate_lines_is_an_error(nacl: Structure, tmp_path: Path) -> None:
    path = tmp_path / "NaCl.vasp"
    path.write_text(_poscar(nacl, "1 1"))  # was read as a 2-atom NaCl, exit 0
    with pytest.raises(InputError) as info:
        read_structure(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 7: ") and "'1 1' declare 2 atoms but 8 coordinate lines" in message


def test_poscar_counts_more_than_coordinate_lines_is_an_error(nacl: Structure, tmp_path: Path) -> None:
    path = tmp_path / "POSCAR"
    path.write_text(_poscar(nacl, "4 5"))
    with pytest.raises(InputError, match=r"truncated POSCAR: line 7: .*9 atoms but only 8"):
        read_structure(path)


def test_poscar_without_species_line_and_with_selective_dynamics(nacl: Structure, tmp_path: Path) -> None:
    from pymatgen.io.vasp import Poscar

    text = Poscar(nacl, selective_dynamics=[[True] * 3] * len(nacl)).get_str().splitlines()
    del text[5]  # VASP 4 style: no species line, counts on line 6
    path = tmp_path / "CONTCAR"
    path.write_text("\n".join(text) + "\n")
    assert len(read_structure(path)) == 8
    text[5] = "2 2"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(InputError, match="line 6: atom counts '2 2' declare 4 atoms but 8"):
        read_structure(path)


def test_cif_number_with_a_flipped_byte_names_tag_and_line(tmp_path: Path) -> None:
    text = (EXAMPLES / "NaCl.cif").read_text()
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Cl", "Cl1"])
    lines[row] = lines[row].replace("0.50000000", "0.338\x8935")
    bad = tmp_path / "flipped.cif"
    bad.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))  # invalid UTF-8, read as latin-1
    with pytest.raises(InputError) as info:
        read_structure(bad)  # was silently read as 0.33835
    assert str(info.value) == f"{bad}: line {row + 1}: _atom_site_fract_z value '0.338\\x8935' is not a number"


@pytest.mark.parametrize("value", ["5.69x", "5.6.9", "5,69", "1e", "--5.69"])
def test_cif_cell_values_with_stray_characters(tmp_path: Path, value: str) -> None:
    text = (EXAMPLES / "NaCl.cif").read_text().replace("_cell_length_b   5.69169403", f"_cell_length_b   {value}")
    bad = tmp_path / "bad.cif"
    bad.write_text(text)
    with pytest.raises(InputError, match=r"line 6: _cell_length_b value .* is not a number"):
        read_structure(bad)


def test_cif_numbers_with_uncertainties_quotes_and_placeholders_still_read(tmp_path: Path) -> None:
    text = (EXAMPLES / "NaCl.cif").read_text()
    text = text.replace("_cell_length_b   5.69169403", "_cell_length_b   5.6917(3)")
    text = text.replace("_cell_length_c   5.69169403", "_cell_length_c   '5.69169403'")
    text = text.replace("_cell_volume   184.38459587", "_cell_volume   ?")
    good = tmp_path / "good.cif"
    good.write_text(text)
    assert len(read_structure(good)) == 8


def test_bad_block_in_a_batch_is_skipped_with_exit_2(tmp_path: Path) -> None:
    text = (EXAMPLES / "Si.cif").read_text()
    bad = tmp_path / "bad.cif"
    bad.write_text(text.replace("_cell_length_a   5.46872825", "_cell_length_a   5.4687x2825"))
    report = ReadReport()
    got = [sid for sid, _ in read_structures([bad, EXAMPLES / "Si.cif"], report=report)]
    assert got == [str(EXAMPLES / "Si.cif")] and report.exit_code == 2
    assert "_cell_length_a" in str(report.failed[0]) and "\n" not in str(report.failed[0])
