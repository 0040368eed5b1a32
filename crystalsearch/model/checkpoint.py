"""Checkpoint folders: ``model.json`` + ``weights.pt`` + ``README.md`` model card.

``model.json`` records the model class, the package version that wrote it, the constructor
arguments, the graph settings and the hash of the atom-feature table, so that a checkpoint is only
ever used with the featurization it was trained on. Weights are loaded with ``weights_only=True``.
Folders are written atomically: into a temporary sibling, then swapped in with ``os.replace``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from crystalsearch._version import __version__
from crystalsearch.atomic import file_sha256, swap_in
from crystalsearch.errors import CheckpointError

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
    radius: float
    max_neighbors: int
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
    radius: float,
    max_neighbors: int,
    metadata: Mapping[str, Any] | None = None,
    card: str = "",
) -> Path:
    """Write a checkpoint folder atomically and return its path."""
    import torch

    from crystalsearch.graph.features import atom_feature_table_hash

    dest = Path(folder)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
    try:
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp / WEIGHTS)
        info = {
            "format_version": FORMAT_VERSION,
            "class": model_class,
            "crystalsearch_version": __version__,
            "config": dict(config),
            "graph": {"radius": radius, "max_neighbors": max_neighbors},
            "atom_feature_table_sha256": atom_feature_table_hash(),
            "weights": WEIGHTS,
            "weights_sha256": file_sha256(tmp / WEIGHTS),
            "metadata": dict(metadata or {}),
        }
        (tmp / MODEL_JSON).write_text(json.dumps(info, indent=2) + "\n")
        if card:
            (tmp / "README.md").write_text(card)
        swap_in(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def read_info(folder: str | os.PathLike[str]) -> CheckpointInfo:
    """Parse and validate ``model.json`` (no weights loaded)."""
    path = resolve(folder)
    meta_path = path / MODEL_JSON
    if not meta_path.is_file():
        hint = " (shipped models: default, crystalclr, crystalclr_cs)" if not path.exists() else ""
        raise CheckpointError(f"{path}: not a crystalsearch checkpoint (no {MODEL_JSON}){hint}")
    try:
        raw = json.loads(meta_path.read_text())
        graph = raw["graph"]
        info = CheckpointInfo(
            path=path,
            model_class=str(raw["class"]),
            config=dict(raw["config"]),
            radius=float(graph["radius"]),
            max_neighbors=int(graph["max_neighbors"]),
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
    if info.version.split(".")[0] != __version__.split(".")[0]:
        raise CheckpointError(
            f"{path}: written by crystalsearch {info.version}, incompatible with {__version__}"
        )
    return info


def load_state_dict(
    info: CheckpointInfo, *, radius: float | None = None, max_neighbors: int | None = None
) -> dict[str, Any]:
    """Check compatibility and load the weights (``weights_only=True``)."""
    import torch

    from crystalsearch.graph.features import atom_feature_table_hash

    if info.atom_table_hash != atom_feature_table_hash():
        raise CheckpointError(
            f"{info.path}: trained with atom-feature table {info.atom_table_hash}, "
            f"this installation has {atom_feature_table_hash()}"
        )
    for name, want, have in (("radius", radius, info.radius), ("max_neighbors", max_neighbors, info.max_neighbors)):
        if want is not None and want != have:
            raise CheckpointError(f"{info.path}: trained with graph {name}={have}, requested {want}")
    weights = info.path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing weights file")
    if file_sha256(weights) != info.weights_sha256:
        raise CheckpointError(f"{weights}: checksum does not match model.json (corrupted or modified)")
    try:
        return dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise CheckpointError(f"{weights}: cannot load weights ({exc})") from None
