"""Graphs of a whole dataset in flat arrays, with candidate neighbours for fast augmentation, cached on disk.

A :class:`GraphStore` keeps, for every atom of every crystal, its ``num_candidates`` (default 32)
nearest neighbours within the radius, sorted by distance. The exact CGCNN graph is the first
``max_neighbors`` (12) of them; the extra candidates let augmentations that move atoms slightly
(perturb, strain) re-pick the 12 nearest with tensors instead of a pymatgen rebuild.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.paths import cache_dir
from crystalsearch.structure.graph.build import DEFAULT_MAX_NEIGHBORS, DEFAULT_RADIUS, CrystalGraph, nearest_neighbors

if TYPE_CHECKING:
    from crystalsearch.structure.graph.batch import GraphBatch

STORE_VERSION = 3
DEFAULT_CANDIDATES = 32


@dataclass(frozen=True, eq=False)
class GraphStore:
    """Candidate-neighbour graphs of S crystals with N atoms and C candidate edges in total.

    Attributes:
        atomic_numbers: int64 [N].
        atom_ptr: int64 [S + 1]; atoms of crystal s are ``atom_ptr[s]:atom_ptr[s+1]``.
        frac_coords: float64 [N, 3].
        lattices: float64 [S, 3, 3].
        edge_ptr: int64 [S + 1]; candidate edges of crystal s are ``edge_ptr[s]:edge_ptr[s+1]``.
        edge_src: int32 [C] centre atom, local to its crystal.
        edge_dst: int32 [C] neighbour atom, local to its crystal.
        edge_image: int8 [C, 3] lattice offset of the neighbour image.
        edge_dist: float32 [C] distance in Å.
        edge_rank: int8 [C] rank of the edge among its centre's candidates (0 = nearest).
    """

    atomic_numbers: np.ndarray
    atom_ptr: np.ndarray
    frac_coords: np.ndarray
    lattices: np.ndarray
    edge_ptr: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    edge_image: np.ndarray
    edge_dist: np.ndarray
    edge_rank: np.ndarray
    radius: float = DEFAULT_RADIUS
    max_neighbors: int = DEFAULT_MAX_NEIGHBORS
    num_candidates: int = DEFAULT_CANDIDATES

    def __len__(self) -> int:
        return int(self.atom_ptr.shape[0] - 1)

    def num_atoms(self) -> np.ndarray:
        """int64 [S] atoms per crystal."""
        return np.diff(self.atom_ptr)

    def graph(self, s: int) -> CrystalGraph:
        """The exact CGCNN graph of crystal ``s`` (its first ``max_neighbors`` candidates per atom)."""
        a0, a1 = self.atom_ptr[s], self.atom_ptr[s + 1]
        e0, e1 = self.edge_ptr[s], self.edge_ptr[s + 1]
        keep = self.edge_rank[e0:e1] < self.max_neighbors
        return CrystalGraph(
            atomic_numbers=self.atomic_numbers[a0:a1],
            edge_index=np.stack([self.edge_src[e0:e1][keep], self.edge_dst[e0:e1][keep]]).astype(np.int64),
            distances=self.edge_dist[e0:e1][keep].astype(np.float64),
            image_offsets=self.edge_image[e0:e1][keep].astype(np.int64),
            lattice=self.lattices[s],
            frac_coords=self.frac_coords[a0:a1],
            radius=self.radius,
            max_neighbors=self.max_neighbors,
        )

    def gather(self, indices: Sequence[int] | np.ndarray, *, candidates: bool = False) -> dict[str, np.ndarray]:
        """Flat arrays of the crystals ``indices`` with global (batch) atom numbering.

        Returns a dict with ``atomic_numbers [N]``, ``frac_coords [N,3]``, ``graph_index [N]``,
        ``num_atoms [B]``, ``lattices [B,3,3]``, ``src [E]``, ``dst [E]``, ``image [E,3]``, ``dist [E]``,
        ``rank [E]`` and ``edge_graph [E]``. With ``candidates=False`` only the exact graph edges.
        """
        idx = np.asarray(indices, dtype=np.int64)
        a0, a1 = self.atom_ptr[idx], self.atom_ptr[idx + 1]
        e0, e1 = self.edge_ptr[idx], self.edge_ptr[idx + 1]
        n_at, n_ed = a1 - a0, e1 - e0
        atom_ids = _ranges(a0, n_at)
        edge_ids = _ranges(e0, n_ed)
        edge_graph = np.repeat(np.arange(idx.shape[0]), n_ed)
        if not candidates:
            exact = self.edge_rank[edge_ids] < self.max_neighbors
            edge_ids, edge_graph = edge_ids[exact], edge_graph[exact]
        offsets = np.concatenate([[0], np.cumsum(n_at)[:-1]])
        return {
            "atomic_numbers": self.atomic_numbers[atom_ids],
            "frac_coords": self.frac_coords[atom_ids],
            "graph_index": np.repeat(np.arange(idx.shape[0]), n_at),
            "num_atoms": n_at,
            "lattices": self.lattices[idx],
            "src": self.edge_src[edge_ids].astype(np.int64) + offsets[edge_graph],
            "dst": self.edge_dst[edge_ids].astype(np.int64) + offsets[edge_graph],
            "image": self.edge_image[edge_ids],
            "dist": self.edge_dist[edge_ids],
            "rank": self.edge_rank[edge_ids],
            "edge_graph": edge_graph,
        }

    def batch(self, indices: Sequence[int] | np.ndarray) -> GraphBatch:
        """The exact graphs of ``indices`` as a :class:`GraphBatch` (no Python loop over crystals)."""
        import torch

        from crystalsearch.structure.graph.batch import GraphBatch

        g = self.gather(indices)
        return GraphBatch(
            atomic_numbers=torch.from_numpy(g["atomic_numbers"]),
            edge_index=torch.from_numpy(np.stack([g["src"], g["dst"]])),
            distances=torch.from_numpy(g["dist"].astype(np.float32)),
            graph_index=torch.from_numpy(g["graph_index"]),
            num_atoms=torch.from_numpy(g["num_atoms"]),
        )

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically as an uncompressed ``.npz``."""
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        meta = np.array([STORE_VERSION, self.radius, self.max_neighbors, self.num_candidates], dtype=np.float64)
        atomic_write_npz(Path(path), meta=meta, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GraphStore:
        with np.load(path, allow_pickle=False) as data:
            meta = data["meta"]
            if int(meta[0]) != STORE_VERSION:
                raise ValueError(f"{path}: graph cache version {int(meta[0])}, expected {STORE_VERSION}")
            arrays = {k: data[k] for k in _ARRAYS}
        return cls(**arrays, radius=float(meta[1]), max_neighbors=int(meta[2]), num_candidates=int(meta[3]))


_ARRAYS = (
    "atomic_numbers", "atom_ptr", "frac_coords", "lattices", "edge_ptr",
    "edge_src", "edge_dst", "edge_image", "edge_dist", "edge_rank",
)  # fmt: skip


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    shift = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(total, dtype=np.int64) + shift


def atomic_write_npz(path: Path, **arrays: Any) -> None:
    """Write ``arrays`` to ``path`` as an ``.npz``, atomically (see :func:`crystalsearch.atomic.atomic_write`)."""
    from crystalsearch.atomic import atomic_write

    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def build_store(
    crystals: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    radius: float = DEFAULT_RADIUS,
    max_neighbors: int = DEFAULT_MAX_NEIGHBORS,
    num_candidates: int = DEFAULT_CANDIDATES,
    progress: Any = None,
) -> GraphStore:
    """Build a store from ``(lattice [3,3], frac_coords [n,3], atomic_numbers [n])`` triples.

    ``progress``, if given, is called with the number of crystals done after each one.
    """
    k = max(num_candidates, max_neighbors)
    if k > 127:
        raise ValueError(f"num_candidates must be <= 127, got {k}")
    numbers, fracs, lattices, atom_counts = [], [], [], []
    src, dst, img, dist, rank, edge_counts = [], [], [], [], [], []
    for lattice, frac, z in crystals:
        ci, pj, im, d = nearest_neighbors(lattice, frac, radius=radius, k=k, atomic_numbers=np.asarray(z))
        n = frac.shape[0]
        starts = np.searchsorted(ci, np.arange(n))
        numbers.append(np.asarray(z, dtype=np.int64))
        fracs.append(np.asarray(frac, dtype=np.float64))
        lattices.append(np.asarray(lattice, dtype=np.float64))
        atom_counts.append(n)
        src.append(ci.astype(np.int32))
        dst.append(pj.astype(np.int32))
        img.append(im.astype(np.int8))
        dist.append(d.astype(np.float32))
        rank.append((np.arange(ci.shape[0]) - starts[ci]).astype(np.int8))
        edge_counts.append(ci.shape[0])
        if progress is not None:
            progress(1)
    return GraphStore(
        atomic_numbers=np.concatenate(numbers) if numbers else np.zeros(0, np.int64),
        atom_ptr=np.concatenate([[0], np.cumsum(atom_counts)]).astype(np.int64),
        frac_coords=np.concatenate(fracs) if fracs else np.zeros((0, 3)),
        lattices=np.stack(lattices) if lattices else np.zeros((0, 3, 3)),
        edge_ptr=np.concatenate([[0], np.cumsum(edge_counts)]).astype(np.int64),
        edge_src=np.concatenate(src) if src else np.zeros(0, np.int32),
        edge_dst=np.concatenate(dst) if dst else np.zeros(0, np.int32),
        edge_image=np.concatenate(img) if img else np.zeros((0, 3), np.int8),
        edge_dist=np.concatenate(dist) if dist else np.zeros(0, np.float32),
        edge_rank=np.concatenate(rank) if rank else np.zeros(0, np.int8),
        radius=radius,
        max_neighbors=max_neighbors,
        num_candidates=k,
    )


def content_key(
    crystals: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    radius: float,
    max_neighbors: int,
    num_candidates: int,
) -> str:
    """SHA-256 key of the crystals' content and the graph settings (for the on-disk cache)."""
    h = hashlib.sha256(f"v{STORE_VERSION}|{radius}|{max_neighbors}|{num_candidates}".encode())
    for lattice, frac, z in crystals:
        h.update(np.ascontiguousarray(lattice, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(frac, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(z, dtype=np.int64).tobytes())
    return h.hexdigest()[:24]


def cached_store(
    crystals: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    radius: float = DEFAULT_RADIUS,
    max_neighbors: int = DEFAULT_MAX_NEIGHBORS,
    num_candidates: int = DEFAULT_CANDIDATES,
    directory: Path | None = None,
    progress: Any = None,
) -> GraphStore:
    """Load the store of ``crystals`` from the cache, building and saving it on a miss."""
    key = content_key(crystals, radius=radius, max_neighbors=max_neighbors, num_candidates=num_candidates)
    path = (directory or cache_dir()) / "graphs" / f"{key}.npz"
    if path.exists():
        try:
            return GraphStore.load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # corrupted or stale: rebuild
    store = build_store(
        crystals, radius=radius, max_neighbors=max_neighbors, num_candidates=num_candidates, progress=progress
    )
    try:
        store.save(path)
    except OSError:
        pass  # a read-only cache is not fatal
    return store
