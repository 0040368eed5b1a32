"""NT-Xent and composition-similarity losses against hand-written python-loop references and known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crystalsearch.train.losses import composition_similarity_loss, nt_xent

# -- python-loop references (float64, no vectorisation, no logsumexp) ----------------------------------


def _views(z1: torch.Tensor, z2: torch.Tensor) -> list[list[float]]:
    """The 2N views [z1[0..N-1], z2[0..N-1]], each L2-normalised, as python lists."""
    out = []
    for row in torch.cat([z1, z2]).double().tolist():
        norm = math.sqrt(sum(x * x for x in row))
        out.append([x / norm for x in row])
    return out


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    v = _views(z1, z2)
    n = len(v) // 2
    total = 0.0
    for k in range(2 * n):
        p = k + n if k < n else k - n
        num = math.exp(_cos(v[k], v[p]) / t)
        den = sum(math.exp(_cos(v[k], v[m]) / t) for m in range(2 * n) if m != k)
        total += -math.log(num / den)
    return total / (2 * n)


def reference_cs(z1: torch.Tensor, z2: torch.Tensor, elements: torch.Tensor, t: float) -> float:
    v = _views(z1, z2)
    n = len(v) // 2
    sets = [set(np.nonzero(row)[0].tolist()) for row in elements.numpy()]
    total = 0.0
    for k in range(2 * n):
        ck = k % n
        positives = [m for m in range(2 * n) if m != k and (m % n == ck or sets[m % n] & sets[ck])]
        assert (k + n) % (2 * n) in positives
        num = sum(math.exp(_cos(v[k], v[m]) / t) for m in positives) / len(positives)
        den = sum(math.exp(_cos(v[k], v[m]) / t) for m in range(2 * n) if m != k)
        total += -math.log(num / den)
    return total / (2 * n)


# The losses compute in at least float32 (``_logits`` promotes bf16/fp16 inputs to float32 and keeps float64
# as it is); the tolerance also covers the float32 inputs of some cases.
REL = ABS = 2e-5


def _random_elements(rng: np.random.Generator, n: int, n_el: int, per: int) -> torch.Tensor:
    el = np.zeros((n, n_el), dtype=bool)
    for i in range(n):
        el[i, rng.choice(n_el, size=rng.integers(1, per + 1), replace=False)] = True
    return torch.from_numpy(el)


CASES = [(n, d, t) for n in (1, 2, 5, 16) for d in (3, 32) for t in (0.07, 0.1, 0.5, 1.0)]


# -- NT-Xent -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("n", "d", "t"), CASES)
def test_nt_xent_matches_reference(n: int, d: int, t: float, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1000 * n + d)
    z1 = torch.randn(n, d, generator=g, dtype=dtype)
    z2 = z1 + 0.5 * torch.randn(n, d, generator=g, dtype=dtype)
    loss = nt_xent(z1, z2, temperature=t)
    assert loss.ndim == 0
    assert float(loss) == pytest.approx(reference_nt_xent(z1, z2, t), rel=REL, abs=ABS)


def test_nt_xent_is_symmetric_in_the_views() -> None:
    g = torch.Generator().manual_seed(0)
    for n, d, t in [(4, 8, 0.1), (9, 16, 0.5), (32, 64, 0.2)]:
        z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
        a, b = nt_xent(z1, z2, temperature=t), nt_xent(z2, z1, temperature=t)
        assert float(a) == pytest.approx(float(b), rel=1e-6)
        # permuting crystals consistently in both views changes nothing either
        perm = torch.randperm(n, generator=g)
        assert float(nt_xent(z1[perm], z2[perm], temperature=t)) == pytest.approx(float(a), rel=1e-5)


def test_nt_xent_is_scale_invariant() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g)
    a = nt_xent(z1, z2, temperature=0.3)
    b = nt_xent(7.5 * z1, 0.01 * z2, temperature=0.3)
    assert float(a) == pytest.approx(float(b), rel=1e-5)


@pytest.mark.parametrize("n", [1, 2, 4, 10])
@pytest.mark.parametrize("t", [0.05, 0.1, 0.5, 1.0])
def test_nt_xent_known_value_identical_views_orthogonal_others(n: int, t: float) -> None:
    # crystal i's views are both e_i: the partner has cosine 1, the other 2N-2 views cosine 0
    z = torch.eye(n, n + 3)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + (2 * n - 2) * math.exp(0.0)))
    assert float(nt_xent(z, z.clone(), temperature=t)) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    el = torch.eye(n, dtype=torch.bool)  # no two crystals share an element
    assert float(composition_similarity_loss(z, z.clone(), el, temperature=t)) == pytest.approx(
        expected, rel=1e-5, abs=1e-6
    )


def test_nt_xent_perfect_and_worst_cases_order() -> None:
    z = torch.eye(4, 8)
    good = nt_xent(z, z.clone(), temperature=0.1)
    bad = nt_xent(z, torch.roll(z, 1, dims=0), temperature=0.1)  # partners orthogonal, a stranger aligned
    assert float(good) < 1e-3 < float(bad)


def test_nt_xent_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        nt_xent(torch.randn(3, 4), torch.randn(4, 4), temperature=0.1)
    with pytest.raises(ValueError):
        nt_xent(torch.randn(3, 4), torch.randn(3, 4), temperature=0.0)


# -- composition-similarity loss ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("n", "d", "t"), CASES)
def test_cs_matches_reference_random_compositions(n: int, d: int, t: float, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(7 * n + d)
    g = torch.Generator().manual_seed(n * d)
    z1 = torch.randn(n, d, generator=g, dtype=dtype)
    z2 = z1 + 0.5 * torch.randn(n, d, generator=g, dtype=dtype)
    el = _random_elements(rng, n, 10, 3)  # 10 elements: plenty of sharing, some crystals share none
    loss = composition_similarity_loss(z1, z2, el, temperature=t)
    assert float(loss) == pytest.approx(reference_cs(z1, z2, el, t), rel=REL, abs=ABS)


def test_cs_equals_nt_xent_when_no_elements_shared() -> None:
    g = torch.Generator().manual_seed(3)
    for n, d, t in [(2, 4, 0.1), (8, 16, 0.07), (20, 128, 0.5)]:
        z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
        el = torch.zeros(n, 118, dtype=torch.bool)
        el[torch.arange(n), torch.randperm(118, generator=g)[:n]] = True  # one distinct element each
        cs = composition_similarity_loss(z1, z2, el, temperature=t)
        assert float(cs) == pytest.approx(float(nt_xent(z1, z2, temperature=t)), rel=1e-6)
        # crystals with no recorded element at all still have their partner as a positive
        empty = torch.zeros(n, 118, dtype=torch.bool)
        cs0 = composition_similarity_loss(z1, z2, empty, temperature=t)
        assert float(cs0) == pytest.approx(float(nt_xent(z1, z2, temperature=t)), rel=1e-6)


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_cs_all_crystals_share_an_element(t: float) -> None:
    g = torch.Generator().manual_seed(4)
    n, d = 12, 24
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    el = _random_elements(np.random.default_rng(5), n, 118, 4)
    el[:, 8] = True  # every crystal contains oxygen: every other view is a positive
    cs = composition_similarity_loss(z1, z2, el, temperature=t)
    assert float(cs) == pytest.approx(reference_cs(z1, z2, el, t), rel=2e-5)
    # with all 2N-1 other views positive the loss is log(2N-1) exactly
    assert float(cs) == pytest.approx(math.log(2 * n - 1), rel=1e-5)
    assert float(cs) != pytest.approx(float(nt_xent(z1, z2, temperature=t)), rel=1e-3)


def test_cs_known_value_two_groups() -> None:
    # 4 crystals, views are orthonormal e_i; crystals {0,1} share Fe, {2,3} share Si; t = 0.5
    t = 0.5
    z = torch.eye(4, 6)
    el = torch.zeros(4, 120, dtype=torch.bool)
    el[0, 26] = el[1, 26] = el[2, 14] = el[3, 14] = True
    el[0, 8] = el[2, 92] = True  # further elements that nobody else has
    # anchor: partner cos 1, the other crystal of its group (2 views) cos 0 -> positives {1, 0, 0}
    den = math.exp(1 / t) + 6
    expected = -math.log(((math.exp(1 / t) + 2) / 3) / den)
    cs = composition_similarity_loss(z, z.clone(), el, temperature=t)
    assert float(cs) == pytest.approx(expected, rel=1e-6)
    assert float(cs) == pytest.approx(reference_cs(z, z.clone(), el, t), rel=1e-6)


def test_cs_wide_element_matrix_and_symmetry() -> None:
    g = torch.Generator().manual_seed(6)
    n, d = 16, 32
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    for n_el in (100, 118, 256):
        el = _random_elements(np.random.default_rng(n_el), n, n_el, 5)
        el[:, n_el - 1] = False
        el[0, n_el - 1] = el[5, n_el - 1] = True  # a shared element only in the last column
        a = composition_similarity_loss(z1, z2, el, temperature=0.2)
        assert float(a) == pytest.approx(reference_cs(z1, z2, el, 0.2), rel=2e-5)
        assert float(composition_similarity_loss(z2, z1, el, temperature=0.2)) == pytest.approx(float(a), rel=1e-6)
        # float/int element matrices mean the same as boolean ones
        b = composition_similarity_loss(z1, z2, el.to(torch.float32), temperature=0.2)
        c = composition_similarity_loss(z1, z2, el.to(torch.int64), temperature=0.2)
        assert float(b) == pytest.approx(float(a), rel=1e-7) and float(c) == pytest.approx(float(a), rel=1e-7)


def test_cs_rejects_wrong_element_rows() -> None:
    with pytest.raises(ValueError):
        composition_similarity_loss(torch.randn(3, 4), torch.randn(3, 4), torch.ones(4, 100), temperature=0.1)


# -- stability and gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_name", ["nt_xent", "cs"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_values_and_gradients_at_low_temperature(loss_name: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(8)
    n, d, t = 32, 64, 0.01  # logits up to 100: exp overflows float32 without logsumexp
    z1 = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    z2 = (z1.detach() + 0.01 * torch.randn(n, d, generator=g, dtype=dtype)).requires_grad_(True)
    el = _random_elements(np.random.default_rng(9), n, 118, 3)
    if loss_name == "nt_xent":
        loss = nt_xent(z1, z2, temperature=t)
        ref = reference_nt_xent(z1.detach(), z2.detach(), t)
    else:
        loss = composition_similarity_loss(z1, z2, el, temperature=t)
        ref = reference_cs(z1.detach(), z2.detach(), el, t)
    assert torch.isfinite(loss)
    assert float(loss.detach()) == pytest.approx(ref, rel=1e-3, abs=1e-3)
    loss.backward()
    assert z1.grad is not None and z2.grad is not None
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
    assert z1.grad.abs().sum() > 0


def test_gradient_matches_finite_differences() -> None:
    g = torch.Generator().manual_seed(10)
    z1 = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    el = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    for fn in (
        lambda a, b: nt_xent(a, b, temperature=0.5),
        lambda a, b: composition_similarity_loss(a, b, el, temperature=0.5),
    ):
        loss = fn(z1, z2)
        (grad,) = torch.autograd.grad(loss, z1)
        eps = 1e-3
        for i, j in [(0, 0), (1, 3), (2, 4)]:
            bump = torch.zeros_like(z1)
            bump[i, j] = eps
            with torch.no_grad():
                fd = (float(fn(z1 + bump, z2)) - float(fn(z1 - bump, z2))) / (2 * eps)
            assert float(grad[i, j]) == pytest.approx(fd, rel=2e-2, abs=2e-4)
