"""Checkpoint folders: ``model.json`` + ``weights.pt`` + ``README.md`` model card.

``model.json`` records the model class, the package version that wrote it, the constructor
arguments, the graph settings and the hash of the atom-feature table, so that a checkpoint is only
ever used with the featurisation it was trained on. Weights are loaded with ``weights_only=True``.
Folders are written atomically: into a temporary sibling, then swapped in (:func:`crystalsearch.atomic.staged_dir`).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from crystalsearch._version import __version__
from crystalsearch.atomic import atomic_write, atomic_write_json, atomic_write_text, file_sha256, staged_dir
from crystalsearch.errors import CheckpointError
from crystalsearch.model.config import config_problem
from crystalsearch.structure.graph.settings import GraphSettings

FORMAT_VERSION = 1
WEIGHTS = "weights.pt"
MODEL_JSON = "model.json"
SHIPPED = {"default": "crystalclr_cs", "crystalclr_cs": "crystalclr_cs", "crystalclr": "crystalclr"}


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``model.json`` says about a checkpoint."""

    path: Path
    model_class: str
    config: dict[str, Any]
    graph: GraphSettings
    atom_table_hash: str
    weights_sha256: str
    version: str
    metadata: dict[str, Any] = field(default_factory=dict)


def shipped_models_dir() -> Path:
    """Folder of the checkpoints shipped inside the package."""
    return Path(str(resources.files("crystalsearch") / "models"))


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """A model name or a folder path.

    Names: ``default`` (= ``crystalclr_cs``), ``crystalclr``, ``crystalclr_cs``, ``heads/<property>/...``.
    A name resolves to the user's rebuilt model (``crystalsearch train`` installs them under
    :func:`crystalsearch.paths.user_models_dir`) when there is one, else to the shipped checkpoint.
    """
    from crystalsearch.paths import user_models_dir

    text = str(name_or_path)
    if text in SHIPPED or text.startswith("heads/"):
        rel = SHIPPED.get(text, text)
        user = user_models_dir() / rel
        if (user / MODEL_JSON).is_file():
            return user
        return shipped_models_dir() / rel
    return Path(text)


def save_checkpoint(
    folder: str | os.PathLike[str],
    *,
    state_dict: Mapping[str, Any],
    model_class: str,
    config: Mapping[str, Any],
    graph: GraphSettings,
    metadata: Mapping[str, Any] | None = None,
    card: str = "",
) -> Path:
    """Write a checkpoint folder atomically and return its path (``graph``: how its graphs are built)."""
    import torch

    from crystalsearch.structure.graph.features import atom_feature_table_hash

    dest = Path(folder)
    with staged_dir(dest) as tmp:
        atomic_write(tmp / WEIGHTS, lambda fh: torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, fh))
        info = {
            "format_version": FORMAT_VERSION,
            "class": model_class,
            "crystalsearch_version": __version__,
            "config": dict(config),
            "graph": graph.to_dict(),
            "atom_feature_table_sha256": atom_feature_table_hash(),
            "weights": WEIGHTS,
            "weights_sha256": file_sha256(tmp / WEIGHTS),
            "metadata": dict(metadata or {}),
        }
        atomic_write_json(tmp / MODEL_JSON, info)
        if card:
            atomic_write_text(tmp / "README.md", card)
    return dest


def rewrite_metadata(folder: str | os.PathLike[str], *, metadata: Mapping[str, Any], card: str) -> Path:
    """Replace a checkpoint's metadata and model card, leaving its weights (and so its hash, which
    indexes and heads are keyed on) byte for byte as they are. Each file is replaced atomically."""
    path = Path(folder)
    raw = json.loads((path / MODEL_JSON).read_text())
    if file_sha256(path / WEIGHTS) != raw["weights_sha256"]:
        raise CheckpointError(f"{path / WEIGHTS}: checksum does not match model.json (corrupted or modified)")
    atomic_write_json(path / MODEL_JSON, {**raw, "metadata": dict(metadata)})
    atomic_write_text(path / "README.md", card)
    return path


def read_info(folder: str | os.PathLike[str]) -> CheckpointInfo:
    """Parse and validate ``model.json`` (no weights loaded)."""
    path = resolve(folder)
    meta_path = path / MODEL_JSON
    if not meta_path.is_file():
        hint = " (shipped models: default, crystalclr, crystalclr_cs)" if not path.exists() else ""
        raise CheckpointError(f"{path}: not a crystalsearch checkpoint (no {MODEL_JSON}){hint}")
    try:
        raw = json.loads(meta_path.read_text())
        info = CheckpointInfo(
            path=path,
            model_class=str(raw["class"]),
            config=dict(raw["config"]),
            graph=GraphSettings.from_dict(raw["graph"]),
            atom_table_hash=str(raw["atom_feature_table_sha256"]),
            weights_sha256=str(raw["weights_sha256"]),
            version=str(raw["crystalsearch_version"]),
            metadata=dict(raw.get("metadata", {})),
        )
        fmt = int(raw["format_version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{meta_path}: malformed model.json ({exc})") from None
    if fmt != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {fmt} is not supported (expected {FORMAT_VERSION})")
    problem = config_problem(info.config) or graph_problem(info.graph)
    if problem is not None:
        raise CheckpointError(f"{meta_path}: invalid model.json ({problem})")
    if info.version.split(".")[0] != __version__.split(".")[0]:
        raise CheckpointError(f"{path}: written by crystalsearch {info.version}, incompatible with {__version__}")
    return info


MAX_RADIUS = 30.0  # Å; the shipped models use 8
MAX_NEIGHBORS = 128  # the shipped models use 12


def graph_problem(graph: GraphSettings) -> str | None:
    """Why a checkpoint's graph settings cannot be built (non-finite or out of bounds), or None."""
    import math

    if not math.isfinite(graph.radius) or not 0 < graph.radius <= MAX_RADIUS:
        return f"graph radius {graph.radius} is outside (0, {MAX_RADIUS}] Å"
    if not 1 <= graph.max_neighbors <= MAX_NEIGHBORS:
        return f"graph max_neighbors {graph.max_neighbors} is outside 1..{MAX_NEIGHBORS}"
    return None


def graph_settings(name_or_path: str | os.PathLike[str]) -> GraphSettings:
    """How the graphs of a checkpoint's model are built (``model.json["graph"]``): the one place models
    learn how to meet structures (``graph_settings(ckpt).graphs(structures)``)."""
    return read_info(name_or_path).graph


def load_state_dict(
    info: CheckpointInfo, *, radius: float | None = None, max_neighbors: int | None = None
) -> dict[str, Any]:
    """Check compatibility and load the weights (``weights_only=True``)."""

    from crystalsearch.structure.graph.features import atom_feature_table_hash

    if (why := info.graph.mismatch()) is not None:
        raise CheckpointError(f"{info.path}: trained with {why}")
    if info.atom_table_hash != atom_feature_table_hash():
        raise CheckpointError(
            f"{info.path}: trained with atom-feature table {info.atom_table_hash}, "
            f"this installation has {atom_feature_table_hash()}"
        )
    graph = info.graph
    for name, want, have in (("radius", radius, graph.radius), ("max_neighbors", max_neighbors, graph.max_neighbors)):
        if want is not None and want != have:
            raise CheckpointError(f"{info.path}: trained with graph {name}={have}, requested {want}")
    weights = info.path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing weights file")
    if file_sha256(weights) != info.weights_sha256:
        raise CheckpointError(f"{weights}: checksum does not match model.json (corrupted or modified)")
    return load_tensors(weights, what="weights")


def load_tensors(path: Path, *, what: str) -> dict[str, Any]:
    """A dict saved by ``torch.save`` holding only tensors and plain Python values, read with
    ``torch.load(weights_only=True)``, which refuses anything else without running it. A file that is not
    such a dict raises :class:`CheckpointError` with one line naming it (``what``: "weights", "resume state")."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:  # what bad files raise
        raise CheckpointError(f"{path}: cannot load {what} ({type(exc).__name__}: {_one_line(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: cannot load {what} (expected a dict, got {type(state).__name__})")
    return dict(state)


def _one_line(exc: BaseException) -> str:
    """The line of a (often multi-line) torch.load error that says what is wrong."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, pickle.UnpicklingError):  # torch's message wraps the reason in advice to unpickle anyway
        reason = [line for line in lines if "GLOBAL" in line or "Unsupported" in line or "Unpickler error" in line]
        return (reason[-1] if reason else "not a plain tensor file") + " (refused: loading it could run code)"
    return lines[0] if lines else "empty error"
