"""CrystalCLR augmentations on real structures: bounds of each pymatgen transform (strain, perturb, column
replace, supercell), reprs and seeding, and the batched fast path against an exact rebuild of the same
augmented geometry."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

pytest.importorskip("pymatgen.core")

from pymatgen.core import Lattice, Structure  # noqa: E402

from crystalsearch.structure.augment.fast import AugmentConfig, AugmentedBatch, augment  # noqa: E402
from crystalsearch.structure.augment.groups import GROUPS, group_of, partner_table  # noqa: E402
from crystalsearch.structure.augment.transforms import (  # noqa: E402
    ColumnReplace,
    Compose,
    Perturb,
    Strain,
    Supercell,
    crystalclr_recipe,
    min_pairwise_distance,
)
from crystalsearch.structure.graph.build import build_graph, graph_from_arrays  # noqa: E402
from crystalsearch.structure.graph.dataset import record_arrays  # noqa: E402
from crystalsearch.structure.graph.store import GraphStore, build_store  # noqa: E402

RADIUS, MAX_NBR = 8.0, 12

# -- building blocks -------------------------------------------------------------------------------------------


def numbers(s: Structure) -> np.ndarray:
    return np.array([site.specie.Z for site in s])


def snapshot(s: Structure) -> tuple[np.ndarray, np.ndarray, list[str]]:
    return s.lattice.matrix.copy(), s.frac_coords.copy(), [str(sp) for sp in s.species]


def assert_same_structure(a: Structure, b: Structure) -> None:
    np.testing.assert_array_equal(a.lattice.matrix, b.lattice.matrix)
    np.testing.assert_array_equal(a.frac_coords, b.frac_coords)
    assert [str(x) for x in a.species] == [str(x) for x in b.species]


def periodic_displacement(before: Structure, after: Structure) -> np.ndarray:
    """Per site, the shortest Cartesian distance from the old position to any periodic image of the new
    one (the 27 images around the wrapped fractional difference; the lattice is unchanged by perturb)."""
    d = after.frac_coords - before.frac_coords
    d -= np.rint(d)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
    cart = (d[:, None, :] + shifts[None, :, :]) @ before.lattice.matrix
    return np.linalg.norm(cart, axis=2).min(axis=1)


def per_atom_distances(batch_src: np.ndarray, dist: np.ndarray, lo: int, hi: int) -> list[np.ndarray]:
    """Sorted neighbour distances of the atoms lo..hi-1 of a flat batch."""
    sel = (batch_src >= lo) & (batch_src < hi)
    local, d = batch_src[sel] - lo, dist[sel].astype(np.float64)
    order = np.lexsort((d, local))
    local, d = local[order], d[order]
    counts = np.bincount(local, minlength=hi - lo)
    return np.split(d, np.cumsum(counts)[:-1])


def fraction_differing(out: AugmentedBatch, *, atol: float = 1e-4) -> tuple[float, int, int]:
    """Fraction of atoms whose 12 fast-path neighbour distances differ from ``graph_from_arrays`` on the
    returned augmented geometry (same count and all within ``atol``), plus (differing, total)."""
    b = out.batch
    src, dist = b.edge_index[0].numpy(), b.distances.numpy()
    off = np.concatenate([[0], np.cumsum(b.num_atoms.numpy())])
    bad = 0
    for s in range(b.num_graphs):
        lo, hi = off[s], off[s + 1]
        exact = graph_from_arrays(
            out.lattices[s], out.frac_coords[lo:hi], out.atomic_numbers[lo:hi], radius=RADIUS, max_neighbors=MAX_NBR
        ).neighbor_distances()
        fast = per_atom_distances(src, dist, lo, hi)
        for e, f in zip(exact, fast):
            if e.shape != f.shape or not np.allclose(e, f, rtol=0.0, atol=atol):
                bad += 1
    total = int(off[-1])
    return bad / total, bad, total


def rows_match(a: np.ndarray, b: np.ndarray, *, atol: float = 1e-4) -> bool:
    """Whether the rows of ``a`` and ``b`` are the same multiset (each row matched once, within ``atol``)."""
    if a.shape != b.shape:
        return False
    used = np.zeros(len(b), dtype=bool)
    for row in a:
        hit = np.nonzero(~used & np.all(np.abs(b - row) <= atol, axis=1))[0]
        if hit.size == 0:
            return False
        used[hit[0]] = True
    return True


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def structures(nacl: Structure, si: Structure, mp_small: Sequence) -> list[Structure]:
    """NaCl (conventional), Si and 10 small shipped MP structures."""
    return [nacl, si, *(r.structure for r in mp_small[:10])]


@pytest.fixture(scope="module")
def store300(mp_records: Sequence) -> GraphStore:
    """Candidate graphs (32 per atom) of 300 shipped structures spread over the set (~8k atoms)."""
    return build_store(record_arrays(list(mp_records[::122])[:300]), num_candidates=32)


def run_fast(store: GraphStore, config: AugmentConfig, seed: int = 0) -> AugmentedBatch:
    g = store.gather(np.arange(len(store)), candidates=True)
    return augment(g, config=config, rng=np.random.default_rng(seed), radius=RADIUS, max_neighbors=MAX_NBR)


# -- groups --------------------------------------------------------------------------------------------


def test_groups_cover_the_atom_table_once() -> None:
    members = [z for m in GROUPS.values() for z in m]
    assert sorted(members) == list(range(1, 101)), "every element 1..100 in exactly one group"
    assert group_of()[57] == group_of()[71] == "lanthanides"
    assert group_of()[89] == group_of()[100] == "actinides"
    assert group_of()[21] == group_of()[39] == "3"
    partners, counts = partner_table()
    assert counts[11] == 6 and set(partners[11, :6]) == {1, 3, 19, 37, 55, 87}
    assert 11 not in partners[11]


# -- pymatgen transforms -------------------------------------------------------------------------------


def test_strain_scales_each_lattice_vector_within_5_percent(structures: list[Structure]) -> None:
    factors = []
    for k, s in enumerate(structures):
        for seed in range(5):
            out = Strain(seed=100 * k + seed)(s)
            old_len = np.linalg.norm(s.lattice.matrix, axis=1)
            f = np.linalg.norm(out.lattice.matrix, axis=1) / old_len
            assert np.all(f >= 1.0 - 1e-12) and np.all(f <= 1.05 + 1e-12), f
            # each vector only scaled, not rotated
            np.testing.assert_allclose(out.lattice.matrix, s.lattice.matrix * f[:, None], atol=1e-10)
            np.testing.assert_allclose(out.frac_coords, s.frac_coords, atol=1e-12)
            assert [str(x) for x in out.species] == [str(x) for x in s.species]
            factors.append(f)
    f = np.concatenate(factors)
    # independent per vector and spread over the range, not a constant
    assert f.min() < 1.01 and f.max() > 1.04
    assert np.ptp(np.stack(factors), axis=1).max() > 0.01


def test_perturb_moves_each_site_at_most_half_the_min_distance(structures: list[Structure]) -> None:
    ratios = []
    for k, s in enumerate(structures):
        dmin = min_pairwise_distance(s)
        # the minimum pairwise distance is the shortest exact-graph edge
        assert dmin == pytest.approx(build_graph(s).distances.min(), abs=1e-9)
        for seed in range(3):
            out = Perturb(seed=10 * k + seed)(s)
            move = periodic_displacement(s, out)
            assert np.all(move <= 0.5 * dmin + 1e-9), (s.composition, move.max(), dmin)
            assert [str(x) for x in out.species] == [str(x) for x in s.species]
            np.testing.assert_array_equal(out.lattice.matrix, s.lattice.matrix)
            assert len(out) == len(s)
            ratios.append(move / dmin)
    r = np.concatenate(ratios)
    assert np.all(r > 0), "every site moves"
    assert r.max() > 0.4, "displacements cover the range up to 0.5 x d_min"


def test_min_pairwise_distance_nacl(nacl: Structure) -> None:
    assert min_pairwise_distance(nacl) == pytest.approx(5.64 / 2, abs=1e-9)


def test_min_pairwise_distance_long_cell(mp_records: Sequence) -> None:
    """mp-680172 is a 4.3 x 4.3 x 162 Å cell: searching up to the longest lattice vector (the old radius)
    took ~47 s for this one structure; the shortest vector bounds the answer."""
    s = next(r for r in mp_records if r.material_id == "mp-680172").structure
    assert max(s.lattice.abc) > 150
    assert min_pairwise_distance(s) == pytest.approx(build_graph(s).distances.min(), abs=1e-9)
    one_atom = Structure(Lattice.from_parameters(3.0, 4.0, 60.0, 90, 90, 90), ["Cu"], [[0, 0, 0]])
    assert min_pairwise_distance(one_atom) == pytest.approx(3.0, abs=1e-9)


def test_column_replace_changes_one_site_within_its_group(structures: list[Structure]) -> None:
    groups = group_of()
    changed_to = set()
    for k, s in enumerate(structures):
        for seed in range(4):
            out = ColumnReplace(seed=10 * k + seed)(s)
            before, after = numbers(s), numbers(out)
            assert len(out) == len(s)
            diff = np.nonzero(before != after)[0]
            assert diff.size == 1, f"{s.composition}: {diff.size} sites changed"
            i = diff[0]
            assert before[i] != after[i] and groups[int(before[i])] == groups[int(after[i])]
            np.testing.assert_array_equal(out.frac_coords, s.frac_coords)
            np.testing.assert_array_equal(out.lattice.matrix, s.lattice.matrix)
            changed_to.add((int(before[i]), int(after[i])))
    assert len(changed_to) > 10, "replacement partners vary"


def test_column_replace_skips_elements_beyond_the_table() -> None:
    # Md (Z = 101) has no row in the atom table and no group partner: only Na can be replaced.
    s = Structure(Lattice.cubic(4.0), ["Md", "Na"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    for seed in range(10):
        out = ColumnReplace(seed=seed)(s)
        assert out[0].specie.Z == 101 and out[1].specie.Z in {1, 3, 19, 37, 55, 87}


def test_column_replace_without_eligible_site_is_identity() -> None:
    s = Structure(Lattice.cubic(4.0), ["Md"], [[0, 0, 0]])
    assert_same_structure(ColumnReplace(seed=0)(s), s)


def test_supercell_27x_sites_same_volume_per_atom(structures: list[Structure]) -> None:
    for s in structures[:6]:
        out = Supercell()(s)
        assert len(out) == 27 * len(s)
        assert out.volume / len(out) == pytest.approx(s.volume / len(s), rel=1e-10)
        assert out.composition.reduced_formula == s.composition.reduced_formula
        np.testing.assert_allclose(out.lattice.abc, np.array(s.lattice.abc) * 3, rtol=1e-10)


def test_probability_zero_and_one(nacl: Structure) -> None:
    for cls in (Perturb, Strain, ColumnReplace):
        assert_same_structure(cls(p=0.0, seed=1)(nacl), nacl)
    assert not np.array_equal(Strain(p=1.0, seed=1)(nacl).lattice.matrix, nacl.lattice.matrix)
    fired = sum(
        not np.array_equal(Strain(p=0.5, seed=seed)(nacl).lattice.matrix, nacl.lattice.matrix) for seed in range(200)
    )
    assert 60 < fired < 140, "p = 0.5 fires about half the time"
    with pytest.raises(ValueError, match="p must be in"):
        Perturb(p=1.5)


def test_reprs() -> None:
    assert repr(Perturb(p=0.5)) == "Perturb(scale=0.5, p=0.5)"
    assert repr(Strain()) == "Strain(max_strain=0.05, p=1.0)"
    assert repr(ColumnReplace(p=0.25)) == "ColumnReplace(p=0.25)"
    assert repr(Supercell()) == "Supercell(scaling=(3, 3, 3), p=1.0)"
    assert repr(crystalclr_recipe()) == (
        "Compose([Perturb(scale=0.5, p=0.5), Strain(max_strain=0.05, p=0.5), ColumnReplace(p=0.5)])"
    )
    assert repr(Compose([Supercell(scaling=(2, 2, 2))])) == "Compose([Supercell(scaling=(2, 2, 2), p=1.0)])"


def test_seeded_reproducible_and_input_untouched(structures: list[Structure]) -> None:
    s = structures[3]
    before = snapshot(s)
    a = crystalclr_recipe(p=1.0, seed=7)(s)
    b = crystalclr_recipe(p=1.0, seed=7)(s)
    c = crystalclr_recipe(p=1.0, seed=8)(s)
    assert_same_structure(a, b)
    assert not np.array_equal(a.frac_coords, c.frac_coords)
    # the caller's generator is used when given, and gives the same result for the same seed
    t = Perturb()
    assert_same_structure(t(s, rng=np.random.default_rng(3)), t(s, rng=np.random.default_rng(3)))
    # a transform's own generator advances: two calls differ
    t2 = Perturb(seed=5)
    assert not np.array_equal(t2(s).frac_coords, t2(s).frac_coords)
    for x, y in zip(before, snapshot(s)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# -- batched fast path ---------------------------------------------------------------------------------


def test_fast_recipe_agrees_with_exact_rebuild(store300: GraphStore) -> None:
    out = run_fast(store300, AugmentConfig(perturb_p=0.5, strain_p=0.5, column_replace_p=0.5))
    frac, bad, total = fraction_differing(out)
    print(f"\nfast vs exact rebuild, recipe p=0.5, 32 candidates: {bad}/{total} atoms differ ({frac:.2%})")
    assert frac <= 0.05
    # the augmentation really moved atoms and lattices
    g = store300.gather(np.arange(len(store300)), candidates=True)
    assert not np.allclose(out.frac_coords, g["frac_coords"])
    assert not np.allclose(out.lattices, g["lattices"])


def test_fast_strain_agrees_with_exact_rebuild(store300: GraphStore) -> None:
    out = run_fast(store300, AugmentConfig.only("strain"), seed=1)
    frac, bad, total = fraction_differing(out)
    print(f"\nfast vs exact rebuild, strain only: {bad}/{total} atoms differ ({frac:.2%})")
    assert frac <= 0.015
    g = store300.gather(np.arange(len(store300)), candidates=True)
    f = np.linalg.norm(out.lattices, axis=2) / np.linalg.norm(g["lattices"], axis=2)
    assert np.all((f >= 1.0 - 1e-12) & (f <= 1.05 + 1e-12)) and f.max() > 1.04
    np.testing.assert_array_equal(out.frac_coords, g["frac_coords"])


def test_fast_perturb_bound(store300: GraphStore) -> None:
    out = run_fast(store300, AugmentConfig.only("perturb"), seed=2)
    g = store300.gather(np.arange(len(store300)), candidates=True)
    cart_move = np.einsum("nj,njk->nk", out.frac_coords - g["frac_coords"], g["lattices"][g["graph_index"]])
    move = np.linalg.norm(cart_move, axis=1)
    dmin = np.full(len(store300), np.inf)
    np.minimum.at(dmin, g["edge_graph"], g["dist"])
    limit = 0.5 * dmin[g["graph_index"]]
    assert np.all(move <= limit + 1e-6) and np.all(move > 0)
    assert (move / limit).max() > 0.99
    np.testing.assert_array_equal(out.atomic_numbers, g["atomic_numbers"])


def test_fast_without_augmentation_is_exact(store300: GraphStore) -> None:
    out = run_fast(store300, AugmentConfig(perturb_p=0.0, strain_p=0.0, column_replace_p=0.0))
    frac, bad, _ = fraction_differing(out, atol=1e-5)
    assert bad == 0 and frac == 0.0
    # unmoved crystals keep the store's exact graph, edge for edge (same choice within tied shells)
    exact = store300.batch(np.arange(len(store300)))
    for name in ("atomic_numbers", "edge_index", "distances", "graph_index", "num_atoms"):
        np.testing.assert_array_equal(getattr(out.batch, name).numpy(), getattr(exact, name).numpy(), err_msg=name)


def test_fast_column_replace_keeps_group_and_count(store300: GraphStore) -> None:
    g = store300.gather(np.arange(len(store300)), candidates=True)
    out = run_fast(store300, AugmentConfig.only("column_replace"), seed=3)
    before, after = g["atomic_numbers"], out.batch.atomic_numbers.numpy()
    np.testing.assert_array_equal(after, out.atomic_numbers)
    assert after.shape == before.shape
    np.testing.assert_array_equal(out.batch.num_atoms.numpy(), store300.num_atoms())
    changed = before != after
    per_graph = np.bincount(g["graph_index"][changed], minlength=len(store300))
    assert np.all(per_graph == 1), "exactly one site per crystal (every shipped element has a group partner)"
    groups = group_of()
    assert all(groups[int(a)] == groups[int(b)] for a, b in zip(before[changed], after[changed]))
    # geometry untouched: the graph is the exact one
    exact = store300.batch(np.arange(len(store300)))
    np.testing.assert_array_equal(out.batch.distances.numpy(), exact.distances.numpy())
    np.testing.assert_array_equal(out.batch.edge_index.numpy(), exact.edge_index.numpy())


def test_fast_supercell_matches_pymatgen_supercell(mp_small: Sequence) -> None:
    import torch

    from crystalsearch.model.embed import Encoder

    records = list(mp_small[:6])
    store = build_store(record_arrays(records), num_candidates=32)
    out = run_fast(store, AugmentConfig.only("supercell"))
    b = out.batch
    np.testing.assert_array_equal(b.num_atoms.numpy(), 27 * store.num_atoms())
    src, dist = b.edge_index[0].numpy(), b.distances.numpy()
    off = np.concatenate([[0], np.cumsum(b.num_atoms.numpy())])
    for s, r in enumerate(records):
        sup = r.structure.make_supercell([3, 3, 3], in_place=False)
        exact = build_graph(sup)
        ex_d, ex_z = exact.neighbor_distances(), exact.atomic_numbers
        fast_d, fast_z = per_atom_distances(src, dist, off[s], off[s + 1]), out.atomic_numbers[off[s] : off[s + 1]]
        assert sorted(ex_z.tolist()) == sorted(fast_z.tolist())
        for z in np.unique(ex_z):
            a = np.stack([d for d, zz in zip(ex_d, ex_z) if zz == z])
            f = np.stack([d for d, zz in zip(fast_d, fast_z) if zz == z])
            assert rows_match(a, f), f"{r.material_id}: neighbour shells of Z={z} differ"
        vol = abs(np.linalg.det(out.lattices[s]))
        assert vol / (off[s + 1] - off[s]) == pytest.approx(sup.volume / len(sup), rel=1e-9)
    enc = Encoder.random(seed=0)
    with torch.inference_mode():
        h_sup = enc.model(b).numpy()
    h = enc.embed([r.structure for r in records])
    cos = (h_sup * h).sum(1) / np.linalg.norm(h_sup, axis=1) / np.linalg.norm(h, axis=1)
    assert np.all(cos > 0.9999), cos


def test_augment_config_only() -> None:
    c = AugmentConfig.only("perturb", "strain")
    assert (c.perturb_p, c.strain_p, c.column_replace_p, c.supercell_p) == (1.0, 1.0, 0.0, 0.0)
    assert c.one_sided
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        AugmentConfig.only("rotate")
