"""Graph stores of shipped datasets (cached on disk, keyed by content and graph settings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from crystalsearch.structure.graph.build import DEFAULT_MAX_NEIGHBORS, DEFAULT_RADIUS
from crystalsearch.structure.graph.store import DEFAULT_CANDIDATES, GraphStore, cached_store

if TYPE_CHECKING:
    from crystalsearch.data.datasets import Record


def record_arrays(records: Sequence[Record]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(lattice, frac_coords, atomic_numbers)`` of each record (no pymatgen structures built)."""
    return [(r.lattice, r.frac_coords, r.atomic_numbers) for r in records]


def store_for_records(
    records: Sequence[Record],
    *,
    radius: float = DEFAULT_RADIUS,
    max_neighbors: int = DEFAULT_MAX_NEIGHBORS,
    num_candidates: int = DEFAULT_CANDIDATES,
    description: str = "building crystal graphs",
    show_progress: bool = True,
) -> GraphStore:
    """The graph store of ``records``, from the cache or built with a rich progress bar."""
    crystals = record_arrays(records)
    if not show_progress:
        return cached_store(crystals, radius=radius, max_neighbors=max_neighbors, num_candidates=num_candidates)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(description, total=len(crystals))
        return cached_store(
            crystals,
            radius=radius,
            max_neighbors=max_neighbors,
            num_candidates=num_candidates,
            progress=lambda n: bar.advance(task, n),
        )


def store_for_dataset(name: str, **kwargs: object) -> GraphStore:
    """The graph store of a shipped dataset (see :func:`crystalsearch.data.datasets.load`)."""
    from crystalsearch.data import datasets

    return store_for_records(datasets.load(name).records, **kwargs)  # type: ignore[arg-type]
