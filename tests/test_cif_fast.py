"""The fast path for plain P1 CIFs builds exactly the structures pymatgen's CifParser builds."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from crystalsearch.data import datasets
from crystalsearch.io import read_structures
from crystalsearch.io.cif_fast import fast_structure

ROOT = Path(__file__).resolve().parents[1]


def _both(path: Path) -> tuple[object, object]:
    from pymatgen.io.cif import CifFile, CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (block,) = CifFile.from_file(str(path)).data.values()
        try:
            (ref,) = CifParser(str(path)).parse_structures(primitive=False, on_error="raise")
        except ValueError:
            ref = None  # pymatgen refuses it (e.g. sites merged past full occupancy)
    return fast_structure(block), ref


def _same(a: object, b: object) -> bool:
    return (
        [s.species_string for s in a] == [s.species_string for s in b]  # type: ignore[attr-defined]
        and np.array_equal(a.lattice.matrix, b.lattice.matrix)  # type: ignore[attr-defined]
        and np.allclose(a.frac_coords, b.frac_coords, rtol=0, atol=1e-12)  # type: ignore[attr-defined]
        and a.labels == b.labels  # type: ignore[attr-defined]
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """CifWriter files (P1) of 150 seeded shipped MP structures, and the same cells with symmetry written."""
    from pymatgen.io.cif import CifWriter

    folder = tmp_path_factory.mktemp("cifs")
    records = random.Random(5).sample(list(datasets.load("mp2025").records), 150)  # noqa: S311 - seeded test sample
    paths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in records:
            CifWriter(r.structure).write_file(folder / f"{r.material_id}.cif")
            paths.append(folder / f"{r.material_id}.cif")
        for r in records[:10]:
            CifWriter(r.structure, symprec=0.1).write_file(folder / f"{r.material_id}_sym.cif")
            paths.append(folder / f"{r.material_id}_sym.cif")
    return paths


def test_fast_path_is_identical_to_cifparser(written: list[Path]) -> None:
    fast = 0
    for path in written:
        mine, ref = _both(path)
        if mine is None:
            assert path.stem.endswith("_sym"), path  # only files with symmetry operations go through CifParser
            continue
        assert _same(mine, ref), path
        fast += 1
    assert 150 <= fast < len(written)  # every P1 file took the fast path, not every symmetrised one


def test_fast_path_declines_what_it_cannot_reproduce(tmp_path: Path) -> None:
    head = "data_x\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n"
    head += "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
    loop = (
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
    )
    cases = {
        "plain": (head + loop + "Na1 Na 0 0 0\nCl1 Cl 0.5(1) 0.5 1.5\nNa2 Na 0.3333 0.5 0\n", True),
        "partial": (head + loop.replace("_z\n", "_z\n_atom_site_occupancy\n") + "Na1 Na 0 0 0 0.5\n", False),
        "oxidation": (head + loop + "Na1 Na+ 0 0 0\nCl1 Cl- 0.5 0.5 0.5\n", False),
        "group": (head + "_symmetry_space_group_name_H-M 'F m -3 m'\n" + loop + "Na1 Na 0 0 0\n", False),
        "overlap": (head + loop + "Na1 Na 0 0 0\nNa2 Na 0.00001 0 0\n", False),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / f"{name}.cif"
        path.write_text(text)
        mine, ref = _both(path)
        assert (mine is not None) == expected, name
        if mine is not None:
            assert _same(mine, ref), name


def test_shipped_and_test_cifs_read_as_before() -> None:
    from pymatgen.io.cif import CifParser

    for path in sorted((ROOT / "examples").glob("*.cif")):
        ((_, s),) = list(read_structures(str(path)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (ref,) = CifParser(str(path)).parse_structures(primitive=False)
        assert len(s) == len(ref) and s.composition == ref.composition, path
