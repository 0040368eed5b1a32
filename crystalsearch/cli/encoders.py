"""``--encoder NAME``: shipped encoders, models installed by ``crystalsearch train``, folders, random.

``crystalsearch train`` installs what it trains as a named model under the data home
(``<data home>/models/<name>``); ``--encoder <name>`` selects it in ``embed``, ``index build`` and
``plot umap``. ``default``, ``crystalclr_cs`` and ``crystalclr`` are the shipped encoders (or their
replacement installed with ``train --replace-default``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crystalsearch.model.embed import Encoder

SHIPPED_NAMES = ("default", "crystalclr_cs", "crystalclr")


def installed_model(name: str) -> Path | None:
    """The folder of a model installed by ``crystalsearch train --name NAME``, if there is one."""
    from crystalsearch.paths import user_models_dir

    if not name or name in SHIPPED_NAMES or "/" in name or "\\" in name or name.startswith("."):
        return None
    folder = user_models_dir() / name
    return folder if (folder / "model.json").is_file() else None


def installed_models() -> list[str]:
    """Names of the models ``crystalsearch train`` installed (excluding property heads)."""
    from crystalsearch.paths import user_models_dir

    root = user_models_dir()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/model.json"))


def load(spec: str) -> Encoder:
    """An encoder from ``--encoder``: an installed model name first, then what ``index build`` accepts
    (``default``, ``random[:SEED]``, a shipped name or a checkpoint folder)."""
    from crystalsearch.catalog.defaults import encoder_from_spec
    from crystalsearch.errors import CheckpointError

    folder = installed_model(spec)
    if folder is not None:
        from crystalsearch.model.embed import Encoder

        return Encoder.load(folder)
    if spec not in SHIPPED_NAMES and not spec.startswith("random") and not Path(spec).expanduser().exists():
        names = ", ".join([*SHIPPED_NAMES, *installed_models(), "random[:SEED]"])
        raise CheckpointError(f"--encoder {spec}: no such model or folder (available: {names})")
    return encoder_from_spec(spec)
