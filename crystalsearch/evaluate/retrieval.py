"""Retrieval quality: can the index find an indexed crystal from a transformed copy of it?

For ``n`` indexed materials (at most ``max_sites`` sites, drawn with ``seed``) we make, per kind:

- ``rotation``: the lattice rotated by a random proper rotation (same fractional coordinates);
- ``translation``: every site shifted by the same random fractional vector;
- ``supercell``: the 2x2x2 supercell;
- ``perturb``: every site moved by a random vector of length U[0, ``perturb``] Å;
- ``strain``: each lattice vector scaled by 1 + u, u ~ U[-``strain``, ``strain``];

embed the copy with the index's encoder and rank all indexed materials by cosine similarity. The
rank of the true entry is 1 + the number of entries strictly more similar (by more than ``tie_tol``),
so entries tied with it (e.g. duplicates of the same crystal) do not push it down. Rotation,
translation and supercell copies have the same crystal graph per atom, so a mean-pooled encoder
must find them at rank 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from crystalsearch.identity.catalog import Catalog

__all__ = ["INVARIANT_KINDS", "KINDS", "KindResult", "RetrievalConfig", "RetrievalReport", "evaluate_retrieval"]

KINDS = ("rotation", "translation", "supercell", "perturb", "strain")
INVARIANT_KINDS = ("rotation", "translation", "supercell")

Cell = tuple[np.ndarray, np.ndarray, np.ndarray]  # lattice [3,3], frac [n,3], atomic numbers [n]


@dataclass(frozen=True)
class RetrievalConfig:
    n: int = 200
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    perturb: float = 0.05
    strain: float = 0.02
    max_sites: int = 24
    tie_tol: float = 1e-6


@dataclass(frozen=True)
class KindResult:
    kind: str
    queries: int
    recall_at_1: float
    recall_at_10: float
    mean_rank: float
    worst_rank: int


@dataclass(frozen=True)
class RetrievalReport:
    results: tuple[KindResult, ...]
    index_size: int
    encoder: str
    config: RetrievalConfig

    @property
    def invariants_at_rank_1(self) -> bool:
        return all(r.recall_at_1 == 1.0 for r in self.results if r.kind in INVARIANT_KINDS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index_size": self.index_size,
            "encoder": self.encoder,
            "config": asdict(self.config),
            "results": [asdict(r) for r in self.results],
            "invariants_at_rank_1": self.invariants_at_rank_1,
        }


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix (QR of a Gaussian matrix, signs fixed, det +1)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def transform(cell: Cell, kind: str, rng: np.random.Generator, config: RetrievalConfig) -> Cell:
    """A transformed copy of ``cell`` (see module doc)."""
    lattice, frac, z = cell
    if kind == "rotation":
        return lattice @ random_rotation(rng).T, frac.copy(), z
    if kind == "translation":
        return lattice.copy(), (frac + rng.random(3)) % 1.0, z
    if kind == "supercell":
        shifts = np.array([(i, j, k) for i in range(2) for j in range(2) for k in range(2)], dtype=np.float64)
        new_frac = ((frac[None, :, :] + shifts[:, None, :]) / 2.0).reshape(-1, 3)
        return lattice * 2.0, new_frac, np.tile(z, 8)
    if kind == "perturb":
        direction = rng.normal(size=frac.shape)
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        cart = direction * rng.uniform(0.0, config.perturb, size=(frac.shape[0], 1))
        return lattice.copy(), frac + cart @ np.linalg.inv(lattice), z
    if kind == "strain":
        scale = 1.0 + rng.uniform(-config.strain, config.strain, size=3)
        return lattice * scale[:, None], frac.copy(), z
    raise ValueError(f"unknown query kind {kind!r}; valid: {', '.join(KINDS)}")


def _cells(catalog: Catalog, rows: list[int]) -> list[Cell]:
    from pymatgen.core.periodic_table import Element

    texts = catalog.db.structures(rows)
    out = []
    for r in rows:
        obj = json.loads(texts[r])
        z = np.array([Element(s).Z for s in obj["species"]], dtype=np.int64)
        out.append((np.array(obj["lattice"], dtype=np.float64), np.array(obj["frac_coords"], dtype=np.float64), z))
    return out


def _embed_cells(catalog: Catalog, cells: list[Cell]) -> np.ndarray:
    from crystalsearch.catalog.faiss_index import normalise

    enc = catalog.encoder
    h = normalise(enc.embed_graphs([enc.graph.graph_of_cell(*cell) for cell in cells]))
    if not catalog.struct_dim:
        return h
    from crystalsearch.structure.fingerprint import fingerprints

    return np.hstack([h, fingerprints([(lattice, frac) for lattice, frac, _ in cells])]).astype(np.float32)


def ranks_of(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, *, tie_tol: float) -> np.ndarray:
    """Rank (1-based, ties with the true entry count in its favour) of ``truth[i]`` for query ``i``."""
    out = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(queries), 256):
        sims = queries[start : start + 256] @ vectors.T
        true = sims[np.arange(sims.shape[0]), truth[start : start + 256]]
        out[start : start + 256] = 1 + (sims > true[:, None] + tie_tol).sum(axis=1)
    return out


def evaluate_retrieval(
    catalog: Catalog, *, config: RetrievalConfig = RetrievalConfig(), progress: Callable[[int], None] | None = None
) -> RetrievalReport:
    """Recall@1 and @10 per query kind for transformed copies of indexed materials (see module doc)."""
    from crystalsearch.catalog.db import Material

    for kind in config.kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown query kind {kind!r}; valid: {', '.join(KINDS)}")
    candidates = catalog.db.ids_where(Material.nsites <= config.max_sites, below=len(catalog))
    rng = np.random.default_rng(config.seed)
    rows = np.sort(rng.choice(candidates, size=min(config.n, candidates.size), replace=False)).tolist()
    cells = _cells(catalog, rows)
    vectors = np.ascontiguousarray(catalog.vectors.vectors())
    truth = np.asarray(rows, dtype=np.int64)
    results = []
    for kind in config.kinds:
        kind_rng = np.random.default_rng([config.seed, KINDS.index(kind)])
        queries = _embed_cells(catalog, [transform(c, kind, kind_rng, config) for c in cells])
        ranks = ranks_of(vectors, queries, truth, tie_tol=config.tie_tol)
        n = max(len(ranks), 1)
        results.append(
            KindResult(
                kind,
                len(ranks),
                float((ranks <= 1).sum() / n),
                float((ranks <= 10).sum() / n),
                float(ranks.mean()) if len(ranks) else 0.0,
                int(ranks.max()) if len(ranks) else 0,
            )  # fmt: skip
        )
        if progress is not None:
            progress(1)
    enc = catalog.manifest.encoder
    return RetrievalReport(tuple(results), len(catalog), f"{enc.name} ({enc.hash})", config)
