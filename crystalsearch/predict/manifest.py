"""A heads folder's ``manifest.json``: the SHA-256 of each file ``predict`` reads beside the members.

``crystalsearch evaluate calibration --fit`` writes ``calibration.json`` and, when the point prediction is
stacked, ``composition.npz``, then records both files' SHA-256 here. Loading the folder checks every recorded
file before reading it, so a modified or swapped file is refused with one line naming it. (The members'
``weights.pt`` are checked against their own ``model.json``.)

Importing this module is cheap (standard library only).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from crystalsearch.errors import CheckpointError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def write_manifest(folder: Path, names: list[str]) -> Path:
    """Record the SHA-256 of ``folder/<name>`` for each of ``names`` (atomically)."""
    from crystalsearch.atomic import atomic_write_json, file_sha256

    path = folder / MANIFEST
    atomic_write_json(path, {"format_version": FORMAT_VERSION,
                             "sha256": {name: file_sha256(folder / name) for name in sorted(names)}})  # fmt: skip
    return path


def read_manifest(folder: Path) -> dict[str, str] | None:
    """File name -> recorded SHA-256, or ``None`` without a manifest; :class:`CheckpointError` if malformed."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"expected format_version {FORMAT_VERSION}")
        files = raw["sha256"]
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and _NAME.fullmatch(k) and k not in (".", "..") and isinstance(v, str)
            and _SHA256.fullmatch(v) for k, v in files.items()
        ):  # fmt: skip
            raise ValueError("sha256 must map plain file names to hex digests")
    except (OSError, UnicodeDecodeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: malformed manifest ({exc})") from None
    return dict(files)


def verify(folder: Path, names: list[str]) -> None:
    """Check that each present file of ``names`` is recorded in the manifest with its current SHA-256 (and
    that every recorded file is present); :class:`CheckpointError` naming the first file that is not."""
    from crystalsearch.atomic import file_sha256

    present = [name for name in names if (folder / name).is_file()]
    recorded = read_manifest(folder)
    if recorded is None:
        if present:
            raise CheckpointError(f"{folder / present[0]}: no {MANIFEST} records its checksum (rewrite the "
                                  "folder's calibration with `crystalsearch evaluate calibration --fit`)")  # fmt: skip
        return
    for name in sorted(set(present) | set(recorded)):
        path = folder / name
        if name not in recorded:
            raise CheckpointError(f"{path}: not recorded in {MANIFEST} (unexpected file)")
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (recorded in {MANIFEST})")
        if file_sha256(path) != recorded[name]:
            raise CheckpointError(f"{path}: checksum does not match {MANIFEST} (corrupted or modified)")
