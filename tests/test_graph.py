"""Crystal graphs on real structures: exact neighbour shells, invariances, agreement with the original CGCNN
recipe, CGCNN node/edge features, batching, the graph store and its on-disk cache."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pymatgen.core")

from pymatgen.core import Lattice, Structure  # noqa: E402

from crystalsearch.evaluate.retrieval import random_rotation  # noqa: E402
from crystalsearch.structure.graph import (  # noqa: E402
    CrystalGraph,
    GraphBatch,
    atom_feature_table,
    build_graph,
    collate,
    gaussian_expand,
    graph_from_arrays,
)
from crystalsearch.structure.graph import store as store_module  # noqa: E402
from crystalsearch.structure.graph.build import reference_neighbor_distances  # noqa: E402
from crystalsearch.structure.graph.dataset import record_arrays, store_for_dataset, store_for_records  # noqa: E402
from crystalsearch.structure.graph.features import gaussian_centers  # noqa: E402
from crystalsearch.structure.graph.store import GraphStore, build_store, cached_store, content_key  # noqa: E402

# -- building blocks -------------------------------------------------------------------------------------------


def edge_vectors(lattice: np.ndarray, frac: np.ndarray, src: np.ndarray, dst: np.ndarray, image: np.ndarray):
    """Cartesian vectors from centre i to the neighbour image (frac[j] + image)."""
    return (frac[dst] + image - frac[src]) @ lattice


def check_graph_consistent(g: CrystalGraph, *, tol: float = 1e-8) -> None:
    """Offsets reproduce distances, no self loops, edges grouped by centre and sorted within a centre."""
    i, j = g.edge_index
    assert g.edge_index.shape == (2, g.num_edges) and g.edge_index.dtype == np.int64
    assert g.distances.shape == (g.num_edges,) and g.image_offsets.shape == (g.num_edges, 3)
    assert g.image_offsets.dtype == np.int64
    assert np.all(np.diff(i) >= 0), "edges grouped by centre"
    d = np.linalg.norm(edge_vectors(g.lattice, g.frac_coords, i, j, g.image_offsets), axis=1)
    np.testing.assert_allclose(d, g.distances, rtol=0, atol=tol)
    assert np.all(g.distances > 1e-8), "no self pairs"
    assert np.all(g.distances <= g.radius + 1e-8)
    counts = np.bincount(i, minlength=g.num_atoms)
    assert counts.max(initial=0) <= g.max_neighbors
    for dist in g.neighbor_distances():
        assert np.all(np.diff(dist) >= -1e-9)  # sorted to 1e-9 Å (ties broken by Z)
    # no (centre, neighbour, image) edge appears twice
    keys = np.concatenate([g.edge_index.T, g.image_offsets], axis=1)
    assert np.unique(keys, axis=0).shape[0] == g.num_edges


def assert_same_neighbor_distances(a: list[np.ndarray], b: list[np.ndarray], *, atol: float = 1e-8) -> None:
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b)):
        assert x.shape == y.shape, f"atom {k}: {x.shape[0]} neighbours vs {y.shape[0]}"
        np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=f"atom {k}")


def numbers(structure: Structure) -> np.ndarray:
    return np.array([site.specie.Z for site in structure])


# -- exact rocksalt shells -----------------------------------------------------------------------------


@pytest.fixture(params=["conventional", "mp-22862"])
def rocksalt(request: pytest.FixtureRequest, nacl: Structure, nacl_mp: Structure) -> tuple[Structure, float, float]:
    """(structure, conventional lattice constant a, tolerance on the shell distances in Å)."""
    if request.param == "conventional":
        return nacl, nacl.lattice.a, 1e-9
    # fcc primitive vectors have length a / sqrt(2); MP's cell is rounded to 1e-6 Å, so it is fcc to ~1e-6 Å
    return nacl_mp, float(np.mean(nacl_mp.lattice.abc)) * np.sqrt(2.0), 2e-6


def test_rocksalt_shells_with_12_neighbors(rocksalt: tuple[Structure, float, float]) -> None:
    s, a, tol = rocksalt
    g = build_graph(s)
    check_graph_consistent(g)
    z = numbers(s)
    assert set(z.tolist()) == {11, 17}
    np.testing.assert_array_equal(g.atomic_numbers, z)
    i, j = g.edge_index
    np.testing.assert_array_equal(np.bincount(i, minlength=len(s)), np.full(len(s), 12))
    assert g.num_edges == 12 * len(s)
    for atom, dist in enumerate(g.neighbor_distances()):
        np.testing.assert_allclose(dist[:6], a / 2, rtol=0, atol=tol)
        np.testing.assert_allclose(dist[6:], a / np.sqrt(2), rtol=0, atol=tol)
        nbr = j[i == atom]
        assert np.all(z[nbr[:6]] != z[atom]), "first shell is the other species"
        assert np.all(z[nbr[6:]] == z[atom]), "second shell is the same species"


def test_rocksalt_first_shell_vectors_are_the_six_axes(nacl: Structure) -> None:
    a = nacl.lattice.a
    g = build_graph(nacl)
    i, j = g.edge_index
    vec = edge_vectors(g.lattice, g.frac_coords, i, j, g.image_offsets)
    axes = np.concatenate([np.eye(3), -np.eye(3)]) * a / 2
    for atom in range(len(nacl)):
        first = vec[i == atom][:6]
        # each of the six +-a/2 axis vectors appears exactly once
        match = np.linalg.norm(first[:, None, :] - axes[None, :, :], axis=2) < 1e-6
        np.testing.assert_array_equal(match.sum(axis=0), np.ones(6))
        np.testing.assert_array_equal(match.sum(axis=1), np.ones(6))


def test_rocksalt_full_second_shell_with_18_neighbors(rocksalt: tuple[Structure, float, float]) -> None:
    s, a, tol = rocksalt
    g = build_graph(s, max_neighbors=18)
    check_graph_consistent(g)
    z = numbers(s)
    i, j = g.edge_index
    for atom, dist in enumerate(g.neighbor_distances()):
        assert dist.shape == (18,)
        np.testing.assert_allclose(dist[:6], a / 2, rtol=0, atol=tol)
        np.testing.assert_allclose(dist[6:], a / np.sqrt(2), rtol=0, atol=tol)
        assert np.all(z[j[i == atom][6:]] == z[atom])
    # the 19th neighbour (third shell, a*sqrt(3)/2) is not kept: radius just above sqrt(2)a/2 gives 18 too
    g2 = build_graph(s, radius=a / np.sqrt(2) + 0.01, max_neighbors=40)
    np.testing.assert_array_equal(np.bincount(g2.edge_index[0], minlength=len(s)), np.full(len(s), 18))


def test_rocksalt_radius_below_first_shell_gives_no_edges(nacl: Structure) -> None:
    g = build_graph(nacl, radius=2.7)
    assert g.num_edges == 0
    assert all(d.shape == (0,) for d in g.neighbor_distances())
    assert len(g.neighbor_distances()) == len(nacl)


# -- fewer than max_neighbors: keep what they have ------------------------------------------------------


def test_chain_keeps_its_six_neighbors() -> None:
    s = Structure(Lattice([[2.1, 0, 0], [0, 12.0, 0], [0, 0, 12.0]]), ["Cu"], [[0, 0, 0]])
    g = build_graph(s)
    check_graph_consistent(g)
    np.testing.assert_allclose(g.distances, [2.1, 2.1, 4.2, 4.2, 6.3, 6.3], atol=1e-9)
    np.testing.assert_array_equal(np.sort(np.abs(g.image_offsets[:, 0])), [1, 1, 2, 2, 3, 3])
    assert np.all(g.image_offsets[:, 1:] == 0)


def test_molecule_in_box_and_isolated_atom() -> None:
    s = Structure(Lattice.cubic(15.0), ["N", "N", "Ar"], np.array([[0, 0, 0], [1.1 / 15, 0, 0], [0.5, 0.5, 0.5]]))
    g = build_graph(s)
    check_graph_consistent(g)
    np.testing.assert_array_equal(g.edge_index, [[0, 1], [1, 0]])
    np.testing.assert_allclose(g.distances, [1.1, 1.1], atol=1e-9)
    assert_same_neighbor_distances(g.neighbor_distances(), reference_neighbor_distances(s))
    assert g.neighbor_distances()[2].shape == (0,)


# -- identities and agreement with the original recipe on shipped structures -------------------------


def test_offsets_reproduce_distances_on_shipped_structures(mp_sample: list) -> None:
    for r in mp_sample:
        g = build_graph(r.structure)
        check_graph_consistent(g)
        np.testing.assert_array_equal(g.atomic_numbers, r.atomic_numbers)


def test_graph_from_arrays_equals_build_graph(mp_sample: list) -> None:
    for r in mp_sample[:50]:
        a = graph_from_arrays(r.lattice, r.frac_coords, r.atomic_numbers)
        b = build_graph(r.structure)
        for name in ("atomic_numbers", "edge_index", "distances", "image_offsets", "lattice", "frac_coords"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_agrees_with_original_recipe_on_200_shipped_structures(mp_sample: list) -> None:
    assert len(mp_sample) == 200
    n_atoms = 0
    for r in mp_sample:
        g = build_graph(r.structure)
        assert_same_neighbor_distances(g.neighbor_distances(), reference_neighbor_distances(r.structure))
        n_atoms += g.num_atoms
    assert n_atoms > 4000


def test_agrees_with_recipe_at_small_radius_where_atoms_have_fewer(mp_sample: list) -> None:
    short = empty = 0
    for r in mp_sample:
        g = build_graph(r.structure, radius=3.0)
        ref = reference_neighbor_distances(r.structure, radius=3.0)
        assert_same_neighbor_distances(g.neighbor_distances(), ref)
        counts = np.array([d.shape[0] for d in ref])
        short += int(np.sum((counts > 0) & (counts < 12)))
        empty += int(np.sum(counts == 0))
    assert short > 1000, "the case 'fewer than 12 within the radius' must actually occur"
    assert empty > 0, "and atoms with no neighbour at all"


@pytest.mark.parametrize("k", [1, 5, 32])
def test_other_max_neighbors_match_recipe(mp_small: list, k: int) -> None:
    for r in mp_small[:8]:
        g = build_graph(r.structure, max_neighbors=k)
        ref = reference_neighbor_distances(r.structure, max_neighbors=k)
        assert_same_neighbor_distances(g.neighbor_distances(), ref)


# -- invariances -----------------------------------------------------------------------------------------


@pytest.fixture
def small_structures(nacl: Structure, si: Structure, mp_small: list) -> list[Structure]:
    return [nacl, si] + [r.structure for r in mp_small[:6]]


def _supercell_site_map(s: Structure, sc: Structure) -> np.ndarray:
    """Index of the original site that each supercell site is an image of."""
    frac = s.lattice.get_fractional_coords(sc.cart_coords)
    diff = frac[:, None, :] - s.frac_coords[None, :, :]
    diff -= np.round(diff)
    dist = np.linalg.norm(diff @ s.lattice.matrix, axis=2)
    idx = dist.argmin(axis=1)
    assert np.all(dist[np.arange(len(sc)), idx] < 1e-6)
    return idx


@pytest.mark.parametrize("scale", [(2, 2, 2), (1, 2, 3)])
def test_supercell_invariance(small_structures: list[Structure], scale: tuple[int, int, int]) -> None:
    for s in small_structures:
        sc = s * scale
        assert len(sc) == len(s) * int(np.prod(scale))
        orig = build_graph(s).neighbor_distances()
        sup = build_graph(sc).neighbor_distances()
        site_map = _supercell_site_map(s, sc)
        np.testing.assert_array_equal(np.bincount(site_map, minlength=len(s)), np.full(len(s), np.prod(scale)))
        assert_same_neighbor_distances(sup, [orig[k] for k in site_map], atol=1e-7)


def test_rotation_invariance(small_structures: list[Structure]) -> None:
    rng = np.random.default_rng(0)
    for s in small_structures:
        rot = random_rotation(rng)
        assert abs(np.linalg.det(rot) - 1) < 1e-12 and not np.allclose(rot, np.eye(3))
        rotated = Structure(
            Lattice(s.lattice.matrix @ rot.T), s.species, s.cart_coords @ rot.T, coords_are_cartesian=True
        )
        assert not np.allclose(rotated.lattice.matrix, s.lattice.matrix)
        g = build_graph(rotated)
        check_graph_consistent(g)
        assert_same_neighbor_distances(g.neighbor_distances(), build_graph(s).neighbor_distances(), atol=1e-7)


def test_translation_invariance(small_structures: list[Structure]) -> None:
    rng = np.random.default_rng(1)
    for s in small_structures:
        for _ in range(3):
            shift = rng.random(3)
            moved = Structure(s.lattice, s.species, (s.frac_coords + shift) % 1.0)
            g = build_graph(moved)
            check_graph_consistent(g)
            assert_same_neighbor_distances(g.neighbor_distances(), build_graph(s).neighbor_distances(), atol=1e-7)


# -- node and edge features -----------------------------------------------------------------------------


def _matminer_table() -> dict[str, list[float]]:
    spec = importlib.util.find_spec("matminer")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("matminer not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "utils" / "data_files" / "cgcnn_atom_feature.json"
    return json.loads(path.read_text())


def test_atom_table_equals_matminer() -> None:
    ref = _matminer_table()
    table = atom_feature_table()
    assert table.shape == (101, 92) and table.dtype == np.float32
    assert len(ref) == 100
    np.testing.assert_array_equal(table[0], np.zeros(92))
    for key, values in ref.items():
        np.testing.assert_array_equal(table[int(key)], np.asarray(values, dtype=np.float32), err_msg=key)
    # one-hot blocks: every element row is binary, and distinct elements have distinct rows
    assert set(np.unique(table[1:])) <= {0.0, 1.0}
    assert np.unique(table[1:], axis=0).shape[0] > 90


def test_node_features_of_real_structures(nacl: Structure, si: Structure, mp_small: list) -> None:
    ref = _matminer_table()
    for s in [nacl, si] + [r.structure for r in mp_small[:4]]:
        g = build_graph(s)
        x = g.node_features()
        assert x.shape == (len(s), 92) and x.dtype == np.float32
        for k, site in enumerate(s):
            np.testing.assert_array_equal(x[k], np.asarray(ref[str(site.specie.Z)], dtype=np.float32))
    x = build_graph(nacl).node_features()
    na, cl = numbers(nacl) == 11, numbers(nacl) == 17
    assert not np.array_equal(x[na][0], x[cl][0])


def test_gaussian_edge_features(nacl: Structure, mp_sample: list) -> None:
    centers = gaussian_centers()
    np.testing.assert_allclose(centers, np.linspace(0.0, 8.0, 41), atol=1e-12)
    e = gaussian_expand(np.array([2.0, 0.0, 8.0, 2.1]))
    assert e.shape == (4, 41) and e.dtype == np.float32
    assert e[0, 10] == pytest.approx(1.0) and e[1, 0] == pytest.approx(1.0) and e[2, 40] == pytest.approx(1.0)
    assert e[0, 9] == pytest.approx(np.exp(-1.0)) and e[0, 11] == pytest.approx(np.exp(-1.0))
    assert e[3, 10] == pytest.approx(np.exp(-0.25), rel=1e-6) and e[3, 11] == pytest.approx(np.exp(-0.25), rel=1e-6)
    for s in [nacl] + [r.structure for r in mp_sample[:20]]:
        g = build_graph(s)
        f = g.edge_features()
        assert f.shape == (g.num_edges, 41)
        frac = g.distances / 0.2
        clear = np.abs(frac - np.round(frac)) < 0.45  # away from midpoints between centres
        np.testing.assert_array_equal(f[clear].argmax(axis=1), np.round(frac[clear]).astype(int))
        np.testing.assert_allclose(
            f.max(axis=1), np.exp(-((g.distances - centers[f.argmax(axis=1)]) ** 2) / 0.04), rtol=1e-5
        )


# -- batches -----------------------------------------------------------------------------------------------


def test_collate(nacl: Structure, si: Structure, mp_small: list) -> None:
    graphs = [build_graph(s) for s in [nacl, si] + [r.structure for r in mp_small[:3]]]
    b = collate(graphs)
    assert isinstance(b, GraphBatch) and b.num_graphs == 5
    counts = [g.num_atoms for g in graphs]
    np.testing.assert_array_equal(b.num_atoms.numpy(), counts)
    np.testing.assert_array_equal(b.graph_index.numpy(), np.repeat(np.arange(5), counts))
    np.testing.assert_array_equal(b.atomic_numbers.numpy(), np.concatenate([g.atomic_numbers for g in graphs]))
    assert b.edge_index.dtype == torch.int64 and b.atomic_numbers.dtype == torch.int64
    assert b.distances.dtype == torch.float32
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    e = 0
    for k, g in enumerate(graphs):
        sl = slice(e, e + g.num_edges)
        np.testing.assert_array_equal(b.edge_index[:, sl].numpy(), g.edge_index + offsets[k])
        np.testing.assert_array_equal(b.distances[sl].numpy(), g.distances.astype(np.float32))
        e += g.num_edges
    assert e == b.edge_index.shape[1]
    # every edge stays inside its graph
    gi = b.graph_index.numpy()
    np.testing.assert_array_equal(gi[b.edge_index[0].numpy()], gi[b.edge_index[1].numpy()])
    with pytest.raises(ValueError):
        collate([])


# -- graph store -------------------------------------------------------------------------------------------


def _edge_set(g: CrystalGraph, atom: int) -> set[tuple[int, ...]]:
    """(neighbour, image) of the edges of centre ``atom``."""
    sel = g.edge_index[0] == atom
    return {(int(j), *map(int, o)) for j, o in zip(g.edge_index[1][sel], g.image_offsets[sel])}


@pytest.fixture(scope="module")
def sample_store(mp_sample: list) -> GraphStore:
    return build_store(record_arrays(mp_sample))


def test_store_graphs_match_build_graph(sample_store: GraphStore, mp_sample: list) -> None:
    assert len(sample_store) == len(mp_sample)
    np.testing.assert_array_equal(sample_store.num_atoms(), [r.num_sites for r in mp_sample])
    same_edges = 0
    for s, r in enumerate(mp_sample):
        g = build_graph(r.structure)
        h = sample_store.graph(s)
        check_graph_consistent(h, tol=2e-6)  # store distances are float32
        np.testing.assert_array_equal(h.atomic_numbers, g.atomic_numbers)
        np.testing.assert_array_equal(h.edge_index[0], g.edge_index[0])
        np.testing.assert_allclose(h.distances, g.distances, rtol=1e-6, atol=0)
        # where the 12th and 13th neighbour are not tied, the same (neighbour, image) edges are kept
        e0, e1 = sample_store.edge_ptr[s], sample_store.edge_ptr[s + 1]
        src, rank, dist = (sample_store.edge_src[e0:e1], sample_store.edge_rank[e0:e1], sample_store.edge_dist[e0:e1])
        d12 = np.full(g.num_atoms, np.nan)  # 12th and 13th candidate distances of each atom
        d13 = np.full(g.num_atoms, np.inf)
        d12[src[rank == 11]], d13[src[rank == 12]] = dist[rank == 11], dist[rank == 12]
        for atom in range(g.num_atoms):
            if d13[atom] - d12[atom] < 1e-4:
                continue
            mine = _edge_set(h, atom)
            assert mine == _edge_set(g, atom), (r.material_id, atom)
            same_edges += 1
    assert same_edges > 2000


def test_store_candidates_are_the_32_nearest(sample_store: GraphStore, mp_sample: list) -> None:
    assert sample_store.num_candidates == 32
    idx = np.arange(0, 200, 25)
    g = sample_store.gather(idx, candidates=True)
    # ranks count 0.. within each centre, distances non-decreasing
    src, rank, dist = g["src"], g["rank"].astype(int), g["dist"]
    starts = np.searchsorted(src, src)
    np.testing.assert_array_equal(rank, np.arange(src.shape[0]) - starts)
    same = src[1:] == src[:-1]
    assert np.all(dist[1:][same] >= dist[:-1][same])
    # offsets reproduce the float32 distances
    lat = g["lattices"][g["edge_graph"]]
    vec = np.einsum("ek,ekl->el", g["frac_coords"][g["dst"]] + g["image"] - g["frac_coords"][g["src"]], lat)
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), dist, rtol=1e-6)
    # candidate distances per atom are the recipe's first 32
    atom = 0
    counts = np.bincount(src, minlength=g["atomic_numbers"].shape[0])
    per_atom = np.split(dist.astype(np.float64), np.cumsum(counts)[:-1])
    for s in idx:
        for ref in reference_neighbor_distances(mp_sample[s].structure, max_neighbors=32):
            np.testing.assert_allclose(per_atom[atom], ref, rtol=1e-6)
            atom += 1
    assert atom == g["atomic_numbers"].shape[0]
    exact = sample_store.gather(idx)
    assert np.all(exact["rank"] < 12) and exact["src"].shape[0] < src.shape[0]


def test_store_batch_equals_from_graphs(sample_store: GraphStore, mp_sample: list) -> None:
    idx = np.array([5, 0, 199, 17, 17, 42])
    b = sample_store.batch(idx)
    ref = GraphBatch.from_graphs([sample_store.graph(int(s)) for s in idx])
    for name in ("atomic_numbers", "edge_index", "distances", "graph_index", "num_atoms"):
        x, y = getattr(b, name), getattr(ref, name)
        assert x.dtype == y.dtype, name
        assert torch.equal(x, y), name
    built = collate([build_graph(mp_sample[int(s)].structure) for s in idx])
    assert torch.equal(b.graph_index, built.graph_index) and torch.equal(b.num_atoms, built.num_atoms)
    assert torch.equal(b.edge_index[0], built.edge_index[0])
    torch.testing.assert_close(b.distances, built.distances, rtol=0, atol=0)


def test_store_save_load_round_trip(sample_store: GraphStore, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "store.npz"
    sample_store.save(path)
    assert path.exists() and not list(path.parent.glob("*.partial"))
    loaded = GraphStore.load(path)
    for name in store_module._ARRAYS:
        a, b = getattr(sample_store, name), getattr(loaded, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert (loaded.radius, loaded.max_neighbors, loaded.num_candidates) == (8.0, 12, 32)
    # a cache from another store version is refused
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["meta"][0] = store_module.STORE_VERSION + 1
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(ValueError, match="version"):
        GraphStore.load(tmp_path / "old.npz")


def _fail_build(*args: object, **kwargs: object) -> GraphStore:
    raise AssertionError("build_store called: the cache was not used")


def test_cache_hit_and_key(mp_small: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crystals = record_arrays(mp_small)
    first = cached_store(crystals, directory=tmp_path)
    files = list((tmp_path / "graphs").glob("*.npz"))
    assert len(files) == 1
    monkeypatch.setattr(store_module, "build_store", _fail_build)
    second = cached_store(crystals, directory=tmp_path)
    for name in store_module._ARRAYS:
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)
    # the key depends on every graph setting and on the content
    key = content_key(crystals, radius=8.0, max_neighbors=12, num_candidates=32)
    assert files[0].stem == key
    assert key != content_key(crystals, radius=6.0, max_neighbors=12, num_candidates=32)
    assert key != content_key(crystals, radius=8.0, max_neighbors=8, num_candidates=32)
    assert key != content_key(crystals, radius=8.0, max_neighbors=12, num_candidates=24)
    moved = [(lat, frac.copy(), z) for lat, frac, z in crystals]
    moved[3][1][0, 0] += 1e-9
    assert key != content_key(moved, radius=8.0, max_neighbors=12, num_candidates=32)
    assert key == content_key(record_arrays(mp_small), radius=8.0, max_neighbors=12, num_candidates=32)
    # a different radius misses the cache and builds its own entry
    with pytest.raises(AssertionError, match="cache was not used"):
        cached_store(crystals, radius=6.0, directory=tmp_path)
    monkeypatch.undo()
    small = cached_store(crystals, radius=6.0, directory=tmp_path)
    assert small.radius == 6.0 and len(list((tmp_path / "graphs").glob("*.npz"))) == 2
    assert small.edge_dist.max() <= 6.0 + 1e-6 < first.edge_dist.max()


def test_cache_rebuilds_junk_file(mp_small: list, tmp_path: Path) -> None:
    crystals = record_arrays(mp_small)
    first = cached_store(crystals, directory=tmp_path)
    (path,) = (tmp_path / "graphs").glob("*.npz")
    path.write_bytes(b"not a cache file" * 8)
    again = cached_store(crystals, directory=tmp_path)
    np.testing.assert_array_equal(again.edge_dist, first.edge_dist)
    assert GraphStore.load(path).edge_dist.shape == first.edge_dist.shape


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_cache_rebuilds_damaged_file(mp_small: list, tmp_path: Path, damage: str) -> None:
    crystals = record_arrays(mp_small)
    first = cached_store(crystals, directory=tmp_path)
    (path,) = (tmp_path / "graphs").glob("*.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    again = cached_store(crystals, directory=tmp_path)
    np.testing.assert_array_equal(again.edge_dist, first.edge_dist)


def test_store_for_records_and_dataset_use_the_cache(
    mp_small: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path))
    a = store_for_records(mp_small, show_progress=False)
    assert len(list((tmp_path / "graphs").glob("*.npz"))) == 1
    full = store_for_dataset("mp_elasticity", show_progress=True)
    assert len(full) == 6111
    assert len(list((tmp_path / "graphs").glob("*.npz"))) == 2
    monkeypatch.setattr(store_module, "build_store", _fail_build)
    b = store_for_records(mp_small, show_progress=True)
    np.testing.assert_array_equal(a.edge_src, b.edge_src)
    again = store_for_dataset("mp_elasticity", show_progress=False)
    np.testing.assert_array_equal(full.edge_dist, again.edge_dist)
    np.testing.assert_array_equal(full.atom_ptr, again.atom_ptr)
