"""Settings of the batched augmentations, importable without torch (training configs nest them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and magnitudes of the batched augmentations (paper recipe by default)."""

    perturb_p: float = 0.5  # each probability is per crystal and view
    strain_p: float = 0.5
    column_replace_p: float = 0.5  # one site -> another element of its periodic-table group
    supercell_p: float = 0.0  # 3x3x3, exact re-indexing (off in the recipe: a near no-op for mean pooling)
    perturb_scale: float = 0.5  # sites move by U[0, scale x min pairwise distance]
    max_strain: float = 0.05  # each lattice vector scaled by 1 + U[0, max_strain]
    one_sided: bool = False  # augment the second view only (the augmentation study)

    @classmethod
    def only(cls, *names: str, one_sided: bool = True) -> AugmentConfig:
        """A config applying exactly the named augmentations with p = 1 (for the augmentation study)."""
        probs = {"perturb": 0.0, "strain": 0.0, "column_replace": 0.0, "supercell": 0.0}
        for name in names:
            if name not in probs:
                raise ValueError(f"unknown augmentation {name!r}; choose from {sorted(probs)}")
            probs[name] = 1.0
        return cls(
            perturb_p=probs["perturb"],
            strain_p=probs["strain"],
            column_replace_p=probs["column_replace"],
            supercell_p=probs["supercell"],
            one_sided=one_sided,
        )
