"""The one shim over StructureMatcher's private steps (crystalsearch.structure.matching): it is used with the
installed pymatgen, and it answers exactly what pymatgen's public API answers, on real structures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from pymatgen.core import Structure

from crystalsearch.data.records import Record
from crystalsearch.structure import matching
from crystalsearch.structure.matching import MatchCriterion, fit_rms, reduce_structure


def test_installed_pymatgen_uses_the_private_steps() -> None:
    assert matching.private_api()


def test_version_guard_refuses_releases_outside_the_checked_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matching, "PRIVATE_API_VERSIONS", ((2000, 1, 1), (2000, 12, 31)))
    assert not matching._private_api_usable()


def _perturbed(s: Structure, seed: int, amount: float = 0.05) -> Structure:
    rng = np.random.default_rng(seed)
    out = s.copy()
    moved = out.cart_coords + rng.normal(scale=amount, size=out.cart_coords.shape)
    return Structure(out.lattice, out.species, moved, coords_are_cartesian=True)


def test_private_and_public_paths_agree(mp_sample: Sequence[Record], monkeypatch: pytest.MonkeyPatch) -> None:
    """Same (RMS, largest displacement) through ``_preprocess``/``_match`` and through ``get_rms_dist``, for
    noisy copies (matches) and for other materials of the same formula size (mostly no match)."""
    criterion = MatchCriterion()
    matcher = criterion.matcher()
    structures = [r.structure for r in mp_sample[:12] if len(r.structure) <= 24]
    pairs = [(s, _perturbed(s, i)) for i, s in enumerate(structures)]
    pairs += [(a, b) for a, b in zip(structures, structures[1:]) if a.composition.reduced_formula
              == b.composition.reduced_formula]  # fmt: skip
    assert len(pairs) >= 8
    private, public = [], []
    for a, b in pairs:
        ra, rb = reduce_structure(a), reduce_structure(b)
        private.append(matching._best_mapping(matcher, ra, rb))
    matching.private_api.cache_clear()
    monkeypatch.setattr(matching, "_private_api_usable", lambda: False)
    try:
        for a, b in pairs:
            ra, rb = reduce_structure(a), reduce_structure(b)
            public.append(matching._best_mapping(matcher, ra, rb))
        assert fit_rms(pairs[0][0], pairs[0][1], criterion) is not None  # the public path decides too
    finally:
        matching.private_api.cache_clear()
    assert sum(p is not None for p in private) >= len(structures) // 2  # noisy copies do match
    for got, want in zip(private, public, strict=True):
        assert (got is None) == (want is None)
        if got is not None and want is not None:
            assert got == pytest.approx(want, abs=1e-9)
