"""Shared fixtures: real crystals (rocksalt NaCl, diamond Si) and small deterministic sets of shipped MP records.

Heavy objects are session-scoped and shared: copy a ``Structure`` before mutating it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.data.datasets import Record

NACL_A = 5.64  # Å, conventional rocksalt NaCl (experimental lattice constant)


@pytest.fixture(scope="session")
def mp_records() -> Sequence[Record]:
    """All 36,738 shipped ``mp_structures`` records (loaded once per pytest session)."""
    from crystalsearch.data import datasets

    return datasets.load("mp_structures").records


@pytest.fixture(scope="session")
def mp_sample(mp_records: Sequence[Record]) -> list[Record]:
    """200 shipped MP records spread over the whole set: every 184th record (indices 0, 184, ..., 36616)."""
    return list(mp_records[::184])


@pytest.fixture(scope="session")
def mp_small(mp_records: Sequence[Record]) -> list[Record]:
    """20 small shipped MP records (2 to 8 sites, varied lattices), every 97th record with 2..8 sites."""
    small = [r for r in mp_records if 2 <= r.num_sites <= 8]
    return small[::97][:20]


def _record(records: Sequence[Record], material_id: str) -> Record:
    for r in records:
        if r.material_id == material_id:
            return r
    raise LookupError(material_id)


@pytest.fixture(scope="session")
def nacl() -> Structure:
    """Conventional rocksalt NaCl, a = 5.64 Å (8 sites: Na at fcc positions, Cl shifted by a/2)."""
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(NACL_A), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="session")
def nacl_mp(mp_records: Sequence[Record]) -> Structure:
    """The shipped primitive NaCl cell, mp-22862 (2 sites, a_conv = 5.6917 Å)."""
    return _record(mp_records, "mp-22862").structure


@pytest.fixture(scope="session")
def si(mp_records: Sequence[Record]) -> Structure:
    """The shipped primitive diamond Si cell, mp-149 (2 sites)."""
    return _record(mp_records, "mp-149").structure


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a test module (restored after it): on a shared 2-core machine two threads spin
    against each other (~10x slower). Modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
