"""The graph settings a model was trained with, which travel with it into every checkpoint.

A model only gives the numbers it was trained for on graphs built the way its training graphs were:
the same neighbour cutoff, the same neighbour count, the same Gaussian edge expansion and atom table.
:class:`GraphSettings` holds those settings (``model.json["graph"]``) and is the one way models meet
structures: :meth:`GraphSettings.graphs` for pymatgen structures, :meth:`GraphSettings.graph_of_cell`
for raw arrays, :meth:`GraphSettings.store` for whole datasets. Read them from a checkpoint with
:func:`crystalsearch.model.checkpoint.graph_settings` (or ``Encoder.graph`` / ``Predictor.graph``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.structure.graph.build import DEFAULT_MAX_NEIGHBORS, DEFAULT_RADIUS
from crystalsearch.structure.graph.features import GAUSSIAN_DMAX, GAUSSIAN_DMIN, GAUSSIAN_STEP, GAUSSIAN_WIDTH

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.data.datasets import Record
    from crystalsearch.structure.graph.build import CrystalGraph
    from crystalsearch.structure.graph.store import GraphStore

Cell = tuple[np.ndarray, np.ndarray, np.ndarray]
GAUSSIAN = (GAUSSIAN_DMIN, GAUSSIAN_DMAX, GAUSSIAN_STEP, GAUSSIAN_WIDTH)


@dataclass(frozen=True)
class GraphSettings:
    """How crystal graphs are built for one model (defaults: the CGCNN recipe, 12 neighbours in 8 Å)."""

    radius: float = DEFAULT_RADIUS
    max_neighbors: int = DEFAULT_MAX_NEIGHBORS
    gaussian: tuple[float, float, float, float] = GAUSSIAN  # dmin, dmax, step, width of the edge expansion

    def __post_init__(self) -> None:
        if not self.radius > 0 or self.max_neighbors < 1:
            raise ValueError(f"graph settings need radius > 0 and max_neighbors >= 1, got {self}")

    # -- model.json -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"radius": self.radius, "max_neighbors": self.max_neighbors, "gaussian": list(self.gaussian)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphSettings:
        """Inverse of :meth:`to_dict`; checkpoints written before the edge expansion was recorded used
        today's (the only one there has been)."""
        gaussian = tuple(float(v) for v in data.get("gaussian", GAUSSIAN))
        if len(gaussian) != 4:
            raise ValueError(f"gaussian must be [dmin, dmax, step, width], got {list(gaussian)}")
        return cls(float(data["radius"]), int(data["max_neighbors"]), gaussian)  # type: ignore[arg-type]

    def mismatch(self) -> str | None:
        """Why this installation cannot build these graphs (its edge expansion differs), or None."""
        if not np.allclose(self.gaussian, GAUSSIAN):
            return f"Gaussian edge expansion {list(self.gaussian)}, this installation has {list(GAUSSIAN)}"
        return None

    # -- building graphs ----------------------------------------------------------------------------------
    def graph(self, structure: Structure) -> CrystalGraph:
        from crystalsearch.structure.graph.build import build_graph

        return build_graph(structure, radius=self.radius, max_neighbors=self.max_neighbors)

    def graphs(self, structures: Iterable[Structure]) -> list[CrystalGraph]:
        return [self.graph(s) for s in structures]

    def graph_of_cell(self, lattice: np.ndarray, frac_coords: np.ndarray, atomic_numbers: np.ndarray) -> CrystalGraph:
        from crystalsearch.structure.graph.build import graph_from_arrays

        return graph_from_arrays(
            lattice, frac_coords, atomic_numbers, radius=self.radius, max_neighbors=self.max_neighbors
        )

    def store(self, crystals: Sequence[Cell], *, num_candidates: int | None = None, progress: Any = None) -> GraphStore:
        """A graph store of raw cells, built now (no cache); ``num_candidates`` defaults to the neighbours."""
        from crystalsearch.structure.graph.store import build_store

        k = num_candidates or self.max_neighbors
        return build_store(
            crystals, radius=self.radius, max_neighbors=self.max_neighbors, num_candidates=k, progress=progress
        )

    def store_for_records(
        self, records: Sequence[Record], *, num_candidates: int | None = None, show_progress: bool = False
    ) -> GraphStore:
        """The cached graph store of dataset records (``num_candidates`` defaults to the neighbours)."""
        from crystalsearch.structure.graph.dataset import store_for_records

        k = num_candidates or self.max_neighbors
        return store_for_records(
            records, radius=self.radius, max_neighbors=self.max_neighbors, num_candidates=k,
            show_progress=show_progress,
        )  # fmt: skip

    def matches(self, store: GraphStore) -> bool:
        """Whether ``store`` was built with these settings."""
        return bool(store.radius == self.radius and store.max_neighbors == self.max_neighbors)
