"""CGCNN encoder (Xie & Grossman, PRL 120, 145301, 2018) on flat edge lists, plus CrystalCLR heads.

Shapes: N atoms, E edges, B crystals in a :class:`~crystalsearch.structure.graph.batch.GraphBatch`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from crystalsearch.model.config import EncoderConfig
from crystalsearch.structure.graph.batch import GraphBatch
from crystalsearch.structure.graph.features import (
    ATOM_FEATURE_DIM,
    GAUSSIAN_WIDTH,
    atom_feature_table,
    gaussian_centers,
)

__all__ = ["CGCNNEncoder", "ContrastiveModel", "EncoderConfig", "PropertyModel", "ProjectionHead", "RegressionHead"]


class GatedConv(nn.Module):
    """One CGCNN convolution: v_i <- softplus(v_i + BN(sum_j sigmoid(z_ij W_f) * softplus(z_ij W_s))).

    ``z_ij = [v_i, v_j, u_ij]``. The linear layer is split so that the atom terms ``v_i W_a`` and
    ``v_j W_b`` are computed once per atom (N x 2F) and gathered, and only ``u_ij W_e`` per edge.
    """

    def __init__(self, atom_fea_len: int, edge_fea_len: int) -> None:
        super().__init__()
        f = atom_fea_len
        self.center = nn.Linear(f, 2 * f)
        self.neighbor = nn.Linear(f, 2 * f, bias=False)
        self.edge = nn.Linear(edge_fea_len, 2 * f, bias=False)
        self.bn1 = nn.BatchNorm1d(2 * f)
        self.bn2 = nn.BatchNorm1d(f)

    def forward(
        self, atoms: torch.Tensor, edge_fea: torch.Tensor, edge_index: torch.Tensor, neighbors_per_atom: int = 0
    ) -> torch.Tensor:
        """atoms [N, F], edge_fea [E, G], edge_index [2, E] -> atoms [N, F].

        ``neighbors_per_atom`` k > 0 promises E = N k edges listed centre by centre (see
        :class:`~crystalsearch.structure.graph.batch.GraphBatch`): the centre term is then broadcast over [N, k]
        and messages are summed by a reshape, with no gather or scatter on the centre side (4% faster
        compiled on CPU, 7% eager); otherwise both go through ``edge_index[0]``.
        """
        n, f = atoms.shape
        src, dst = edge_index[0], edge_index[1]
        k = neighbors_per_atom
        per_edge = self.neighbor(atoms)[dst] + self.edge(edge_fea)
        if k > 0:
            gated = (self.center(atoms).unsqueeze(1) + per_edge.view(n, k, 2 * f)).view(-1, 2 * f)
        else:
            gated = self.center(atoms)[src] + per_edge
        gated = self.bn1(gated)
        filt, core = gated.chunk(2, dim=1)
        messages = torch.sigmoid(filt) * F.softplus(core)
        if k > 0:
            summed = messages.view(n, k, f).sum(1).to(atoms.dtype)
        else:
            summed = torch.zeros_like(atoms).index_add_(0, src, messages.to(atoms.dtype))
        return F.softplus(atoms + self.bn2(summed))


class CGCNNEncoder(nn.Module):
    """f: crystal graph -> representation h [B, h_dim].

    Atom table embedding (92 -> F), ``n_conv`` gated convolutions, mean pooling over atoms, one
    linear layer to ``h_dim``. Mean pooling makes h invariant to supercells, rotations, translations.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or EncoderConfig()
        c = self.config
        self.atom_table: torch.Tensor
        self.gauss_centers: torch.Tensor
        self.register_buffer("atom_table", torch.from_numpy(atom_feature_table()), persistent=False)
        self.register_buffer("gauss_centers", torch.from_numpy(gaussian_centers()).float(), persistent=False)
        self.embedding = nn.Linear(ATOM_FEATURE_DIM, c.atom_fea_len)
        n_gauss = int(self.gauss_centers.shape[0])
        self.convs = nn.ModuleList(GatedConv(c.atom_fea_len, n_gauss) for _ in range(c.n_conv))
        self.to_h = nn.Linear(c.atom_fea_len, c.h_dim)

    def edge_features(self, distances: torch.Tensor) -> torch.Tensor:
        """Gaussian expansion [E, 41] of distances [E] (Å)."""
        diff = distances[:, None] - self.gauss_centers[None, :]
        return torch.exp(-(diff**2) / GAUSSIAN_WIDTH**2)

    def atom_representations(self, batch: GraphBatch) -> torch.Tensor:
        """Per-atom features after the convolutions, [N, F]."""
        atoms = self.embedding(self.atom_table[batch.atomic_numbers])
        edge_fea = self.edge_features(batch.distances)
        for conv in self.convs:
            atoms = conv(atoms, edge_fea, batch.edge_index, batch.neighbors_per_atom)
        return atoms

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        """Representations h [B, h_dim]."""
        atoms = self.atom_representations(batch)
        pooled = torch.zeros(batch.num_graphs, atoms.shape[1], dtype=atoms.dtype, device=atoms.device)
        pooled.index_add_(0, batch.graph_index, atoms)
        pooled = pooled / batch.num_atoms.to(atoms.dtype).clamp(min=1)[:, None]
        return self.to_h(pooled)


class ProjectionHead(nn.Module):
    """g: h [B, h_dim] -> z [B, proj_dim], a 2-layer MLP used only in pretraining."""

    def __init__(self, h_dim: int = 128, proj_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(h_dim, h_dim), nn.ReLU(), nn.Linear(h_dim, proj_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class RegressionHead(nn.Module):
    """CGCNN-style regression head: softplus -> Linear(h, hidden) -> softplus -> Linear(hidden, 1)."""

    def __init__(self, h_dim: int = 128, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Softplus(), nn.Linear(h_dim, hidden), nn.Softplus(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).squeeze(-1)


class ContrastiveModel(nn.Module):
    """Encoder f plus projection head g, for CrystalCLR pretraining."""

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.encoder = CGCNNEncoder(config)
        c = self.encoder.config
        self.head = ProjectionHead(c.h_dim, c.proj_dim)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        return self.head(self.encoder(batch))


class PropertyModel(nn.Module):
    """Encoder f plus a regression head, for fine-tuning on one property."""

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.encoder = CGCNNEncoder(config)
        self.head = RegressionHead(self.encoder.config.h_dim)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        return self.head(self.encoder(batch))
