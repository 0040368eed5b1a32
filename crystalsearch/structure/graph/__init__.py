"""Crystal graph featurisation: exact CGCNN neighbour graphs, batches and the on-disk graph cache."""

from __future__ import annotations

from crystalsearch.structure.graph.batch import GraphBatch, collate
from crystalsearch.structure.graph.build import CrystalGraph, build_graph, graph_from_arrays, nearest_neighbors
from crystalsearch.structure.graph.features import atom_feature_table, gaussian_expand

__all__ = [
    "CrystalGraph",
    "GraphBatch",
    "atom_feature_table",
    "build_graph",
    "collate",
    "gaussian_expand",
    "graph_from_arrays",
    "nearest_neighbors",
]
