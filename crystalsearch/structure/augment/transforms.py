"""CrystalCLR augmentations on pymatgen structures.

Each transform, like a PyG transform, is called on a structure, returns an augmented *copy* (the
input is never modified) and has a ``__repr__``. A transform fires with probability ``p`` and draws
its randomness from its own seeded generator (or from the ``rng`` passed to the call).

These are the exact, per-structure versions; training uses the batched tensor version in
:mod:`crystalsearch.structure.augment.fast` for perturb and strain, which agrees with these up to the
neighbour re-selection tolerance tested in ``tests/test_augment.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from crystalsearch.structure.augment.groups import partner_table
from crystalsearch.structure.graph.build import nearest_neighbors

if TYPE_CHECKING:
    from pymatgen.core import Structure


class Transform:
    """Base class: ``__call__`` copies, decides with probability ``p``, then calls :meth:`forward`."""

    def __init__(self, *, p: float = 1.0, seed: int | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = p
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def __call__(self, structure: Structure, *, rng: np.random.Generator | None = None) -> Structure:
        rng = rng if rng is not None else self.rng
        out = structure.copy()
        if rng.random() < self.p:
            out = self.forward(out, rng)
        return out

    def forward(self, structure: Structure, rng: np.random.Generator) -> Structure:
        raise NotImplementedError

    def _args(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self._args()
        return f"{type(self).__name__}({extra + ', ' if extra else ''}p={self.p})"


def min_pairwise_distance(structure: Structure) -> float:
    """Shortest distance between any two sites, periodic images included (Å)."""
    lattice = structure.lattice.matrix
    # The nearest neighbour of any site is within the shortest lattice vector.
    radius = float(np.linalg.norm(lattice, axis=1).min()) + 1e-6
    _, _, _, dist = nearest_neighbors(lattice, structure.frac_coords, radius=radius, k=1)
    return float(dist.min())


class Perturb(Transform):
    """Move each site in a random direction by a distance ~ U[0, scale x min pairwise distance]."""

    def __init__(self, *, scale: float = 0.5, p: float = 1.0, seed: int | None = None) -> None:
        super().__init__(p=p, seed=seed)
        self.scale = scale

    def forward(self, structure: Structure, rng: np.random.Generator) -> Structure:
        from pymatgen.core import Structure as _Structure

        n = len(structure)
        dmax = self.scale * min_pairwise_distance(structure)
        direction = rng.normal(size=(n, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        shift = direction * rng.uniform(0.0, dmax, size=(n, 1))
        cart = structure.cart_coords + shift
        return _Structure(structure.lattice, structure.species, cart, coords_are_cartesian=True)

    def _args(self) -> str:
        return f"scale={self.scale}"


class Strain(Transform):
    """Scale each lattice vector independently by 1 + u, u ~ U[0, max_strain]; fractional coords kept."""

    def __init__(self, *, max_strain: float = 0.05, p: float = 1.0, seed: int | None = None) -> None:
        super().__init__(p=p, seed=seed)
        self.max_strain = max_strain

    def forward(self, structure: Structure, rng: np.random.Generator) -> Structure:
        from pymatgen.core import Lattice
        from pymatgen.core import Structure as _Structure

        factors = 1.0 + rng.uniform(0.0, self.max_strain, size=3)
        lattice = Lattice(structure.lattice.matrix * factors[:, None])
        return _Structure(lattice, structure.species, structure.frac_coords)

    def _args(self) -> str:
        return f"max_strain={self.max_strain}"


class ColumnReplace(Transform):
    """Replace one random site by a different element of the same periodic-table group.

    Sites whose element has no other group member (Z <= 100) are never chosen; a structure with no
    such site is returned unchanged. See :mod:`crystalsearch.structure.augment.groups` for the f-block.
    """

    def forward(self, structure: Structure, rng: np.random.Generator) -> Structure:
        from pymatgen.core import Element

        partners, counts = partner_table()
        numbers = np.array([site.specie.Z for site in structure])
        eligible = np.nonzero((numbers <= 100) & (counts[np.minimum(numbers, 100)] > 0))[0]
        if eligible.size == 0:
            return structure
        site = int(rng.choice(eligible))
        z = numbers[site]
        new_z = int(partners[z, rng.integers(counts[z])])
        structure.replace(site, Element.from_Z(new_z))
        return structure


class Supercell(Transform):
    """Repeat the cell ``scaling`` times along each lattice vector (default 3x3x3)."""

    def __init__(self, *, scaling: Sequence[int] = (3, 3, 3), p: float = 1.0, seed: int | None = None) -> None:
        super().__init__(p=p, seed=seed)
        self.scaling = tuple(int(s) for s in scaling)

    def forward(self, structure: Structure, rng: np.random.Generator) -> Structure:
        return structure.make_supercell(list(self.scaling), in_place=False)

    def _args(self) -> str:
        return f"scaling={self.scaling}"


class Compose(Transform):
    """Apply transforms in order (each with its own probability)."""

    def __init__(self, transforms: Sequence[Transform], *, seed: int | None = None) -> None:
        super().__init__(p=1.0, seed=seed)
        self.transforms = list(transforms)

    def forward(self, structure: Structure, rng: np.random.Generator) -> Structure:
        for t in self.transforms:
            structure = t(structure, rng=rng)
        return structure

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


AUGMENTATIONS = {"perturb": Perturb, "strain": Strain, "column_replace": ColumnReplace, "supercell": Supercell}


def crystalclr_recipe(*, p: float = 0.5, seed: int | None = None) -> Compose:
    """The paper's final recipe: perturb + strain + column replace, each with probability ``p``."""
    return Compose([Perturb(p=p), Strain(p=p), ColumnReplace(p=p)], seed=seed)
