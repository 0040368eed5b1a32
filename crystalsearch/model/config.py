"""Constructor arguments of the CGCNN encoder, importable without torch (training configs nest them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class EncoderConfig:
    """Constructor arguments of :class:`~crystalsearch.model.cgcnn.CGCNNEncoder` (stored in ``model.json``)."""

    atom_fea_len: int = 64  # atom feature width F inside the convolutions
    n_conv: int = 3  # gated convolutions
    h_dim: int = 128  # the representation h (what search and the heads use)
    proj_dim: int = 128  # the projection z of the pretraining head (not part of an encoder checkpoint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
