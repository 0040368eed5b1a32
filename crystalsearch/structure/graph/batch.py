"""Batches of crystal graphs as flat tensors (no padding)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from crystalsearch.structure.graph.build import CrystalGraph


@dataclass(frozen=True)
class GraphBatch:
    """B crystal graphs concatenated into one disconnected graph of N atoms and E edges.

    Attributes:
        atomic_numbers: long [N] atomic numbers (index into the CGCNN atom table).
        edge_index: long [2, E] global atom indices; row 0 the centre, row 1 the neighbour.
        distances: float32 [E] neighbour distances in Å.
        graph_index: long [N] which graph (0..B-1) each atom belongs to.
        num_atoms: long [B] atoms per graph.
        neighbors_per_atom: k when every atom is the centre of exactly k edges, listed atom by atom
            (``edge_index[0] == repeat(arange(N), k)``), else 0. Computed from ``edge_index`` when not
            given. With k > 0 the encoder sums messages with a reshape [N, k, F] instead of a scatter.
    """

    atomic_numbers: torch.Tensor
    edge_index: torch.Tensor
    distances: torch.Tensor
    graph_index: torch.Tensor
    num_atoms: torch.Tensor
    neighbors_per_atom: int = -1

    def __post_init__(self) -> None:
        if self.neighbors_per_atom < 0:
            k = regular_degree(self.edge_index, int(self.atomic_numbers.shape[0]))
            object.__setattr__(self, "neighbors_per_atom", k)

    @property
    def num_graphs(self) -> int:
        return int(self.num_atoms.shape[0])

    @classmethod
    def from_graphs(cls, graphs: Sequence[CrystalGraph]) -> GraphBatch:
        """Concatenate graphs, offsetting edge indices by the atoms that come before."""
        import torch

        if not graphs:
            raise ValueError("cannot batch zero graphs")
        counts = np.fromiter((g.num_atoms for g in graphs), dtype=np.int64, count=len(graphs))
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        edge_index = np.concatenate([g.edge_index + off for g, off in zip(graphs, offsets)], axis=1)
        return cls(
            atomic_numbers=torch.from_numpy(np.concatenate([g.atomic_numbers for g in graphs])),
            edge_index=torch.from_numpy(edge_index),
            distances=torch.from_numpy(np.concatenate([g.distances for g in graphs]).astype(np.float32)),
            graph_index=torch.from_numpy(np.repeat(np.arange(len(graphs)), counts)),
            num_atoms=torch.from_numpy(counts),
        )

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> GraphBatch:
        """The same batch on ``device``."""
        return replace(
            self,
            atomic_numbers=self.atomic_numbers.to(device, non_blocking=non_blocking),
            edge_index=self.edge_index.to(device, non_blocking=non_blocking),
            distances=self.distances.to(device, non_blocking=non_blocking),
            graph_index=self.graph_index.to(device, non_blocking=non_blocking),
            num_atoms=self.num_atoms.to(device, non_blocking=non_blocking),
        )


def regular_degree(edge_index: torch.Tensor, num_atoms: int) -> int:
    """k if ``edge_index[0]`` is ``repeat(arange(num_atoms), k)`` (k >= 1), else 0."""
    import torch

    n_edges = int(edge_index.shape[1])
    if num_atoms == 0 or n_edges == 0 or n_edges % num_atoms:
        return 0
    k = n_edges // num_atoms
    src = edge_index[0]
    expected = torch.arange(num_atoms, device=src.device).repeat_interleave(k)
    return k if bool(torch.equal(src, expected)) else 0


def collate(graphs: Sequence[CrystalGraph]) -> GraphBatch:
    """Batch graphs into a :class:`GraphBatch` (alias of ``GraphBatch.from_graphs``)."""
    return GraphBatch.from_graphs(graphs)


def concat_batches(batches: Sequence[GraphBatch]) -> GraphBatch:
    """Concatenate batches into one (graphs of ``batches[1]`` follow those of ``batches[0]``, ...)."""
    import torch

    atom_off = 0
    graph_off = 0
    edges, gidx = [], []
    for b in batches:
        edges.append(b.edge_index + atom_off)
        gidx.append(b.graph_index + graph_off)
        atom_off += int(b.atomic_numbers.shape[0])
        graph_off += b.num_graphs
    return GraphBatch(
        atomic_numbers=torch.cat([b.atomic_numbers for b in batches]),
        edge_index=torch.cat(edges, dim=1),
        distances=torch.cat([b.distances for b in batches]),
        graph_index=torch.cat(gidx),
        num_atoms=torch.cat([b.num_atoms for b in batches]),
    )
