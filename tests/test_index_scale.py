"""What index builds rely on at catalog scale: blocked exact search for the build-time recall check, and the
FAISS factory ``index build`` picks by size."""

from __future__ import annotations

import numpy as np
import pytest

from crystalsearch.catalog.build import EXACT_UP_TO, auto_factory
from crystalsearch.catalog.faiss_index import exact_top_k, make_index, recall_at_k


@pytest.mark.parametrize(("n", "block"), [(1000, 64), (50, 7), (5, 3), (20_000, 65_536)])
def test_exact_top_k_by_blocks_is_a_full_sort(n: int, block: int) -> None:
    rng = np.random.default_rng(n)
    v = rng.standard_normal((n, 16)).astype(np.float32)
    v[3] = v[4]  # a tie: the lower row first, as a stable sort puts it
    q = v[rng.choice(n, size=min(n, 40), replace=False)]
    full = np.argsort(-(q @ v.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(exact_top_k(q, v, 10, block=block), full)


def test_recall_of_an_inverted_file_on_clustered_vectors() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((64, 32)).astype(np.float32)
    x = centres[rng.integers(0, 64, 20_000)] + 0.3 * rng.standard_normal((20_000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = make_index(x, dim=32, factory="IVF64,Flat")
    r = recall_at_k(index, x, n_queries=200)
    assert 0.9 <= r <= 1.0
    import faiss

    faiss.ParameterSpace().set_index_parameter(index, "nprobe", 64)  # every list: exact
    assert recall_at_k(index, x, n_queries=200) == 1.0


def test_auto_factory_by_size() -> None:
    assert auto_factory(1) == auto_factory(EXACT_UP_TO) == "Flat"
    assert auto_factory(170_466) == "IVF2048,Flat"
