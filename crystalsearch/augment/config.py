"""Settings of the batched augmentations, importable without torch (training configs nest them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and magnitudes of the batched augmentations (paper recipe by default)."""

    perturb_p: float = 0.5
    strain_p: float = 0.5
    column_replace_p: float = 0.5
    supercell_p: float = 0.0
    perturb_scale: float = 0.5
    max_strain: float = 0.05
    one_sided: bool = False

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
