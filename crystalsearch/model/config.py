"""Constructor arguments of the CGCNN encoder, importable without torch (training configs nest them).

Sizes are checked before anything is allocated: each is a whole number from 1 to its bound in
:data:`LIMITS`. The bounds are far above any model this package trains (64/3/128/128: 0.2 M parameters)
and keep the largest allowed encoder near 140 M parameters (~0.5 GB of float32 weights), so a mistyped or
hostile ``model.json`` is refused in one line instead of asking for hundreds of GB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["LIMITS", "EncoderConfig", "config_problem"]

LIMITS = {"atom_fea_len": 1024, "n_conv": 32, "h_dim": 4096, "proj_dim": 4096}


def config_problem(config: Any) -> str | None:
    """Why ``config`` (a ``model.json`` ``config`` object) cannot build an encoder, or None."""
    if not isinstance(config, dict):
        return "config must be a JSON object"
    unknown = sorted(set(config) - set(LIMITS))
    if unknown:
        return f"unknown setting(s) {', '.join(map(str, unknown))}; known: {', '.join(LIMITS)}"
    for name, value in config.items():
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{name} must be a whole number, not {value!r}"
        if not 1 <= value <= LIMITS[name]:
            return f"{name}={value} is outside 1..{LIMITS[name]}"
    return None


@dataclass(frozen=True)
class EncoderConfig:
    """Constructor arguments of :class:`~crystalsearch.model.cgcnn.CGCNNEncoder` (stored in ``model.json``).

    Raises ValueError for a size that is not a whole number in ``1..LIMITS[name]``.
    """

    atom_fea_len: int = 64  # atom feature width F inside the convolutions
    n_conv: int = 3  # gated convolutions
    h_dim: int = 128  # the representation h (what search and the heads use)
    proj_dim: int = 128  # the projection z of the pretraining head (not part of an encoder checkpoint)

    def __post_init__(self) -> None:
        problem = config_problem({f.name: getattr(self, f.name) for f in fields(self)})
        if problem is not None:
            raise ValueError(problem)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
