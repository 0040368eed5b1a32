"""Which encoder and which index to use by default, and how to load an index's encoder again.

The default index is, in order: the one shipped in the package (``crystalsearch/models/index``) if it
was built with the default encoder; else ``<cache>/index/<CATALOG_TAG>-<encoder hash>``
(``crystalsearch.structure.graph.store.cache_dir()``), built there on first use with a progress bar and reused
afterwards. If the default encoder checkpoint is missing, an untrained random encoder (seed 0) stands in,
with a note.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from crystalsearch.catalog.manifest import MANIFEST, encoder_info, encoder_ref, load_encoder, read_manifest  # noqa: F401 - re-exported
from crystalsearch.errors import CheckpointError, CrystalSearchError, IndexFileError

if TYPE_CHECKING:
    from crystalsearch.model.embed import Encoder

__all__ = [
    "cache_index_dir",
    "default_encoder",
    "default_index",
    "encoder_from_spec",
    "load_encoder",
    "shipped_index_dir",
]


def notify_stderr(message: str) -> None:
    sys.stderr.write(message.rstrip() + "\n")
    sys.stderr.flush()


def encoder_from_spec(spec: str, *, notify: Callable[[str], None] = notify_stderr) -> Encoder:
    """``default`` (random fallback with a note), ``random``/``random:SEED``, a shipped name or a folder."""
    from crystalsearch.model.embed import Encoder

    if spec == "default":
        return default_encoder(notify=notify)
    if spec == "random" or spec.startswith("random:"):
        seed = spec.partition(":")[2] or "0"
        if not seed.isdigit():
            raise CrystalSearchError(f"--encoder {spec}: expected random or random:SEED")
        return Encoder.random(seed=int(seed))
    if spec.startswith("random("):
        return load_encoder(spec)
    return Encoder.load(spec)


def shipped_index_dir() -> Path:
    """Where a prebuilt default index ships inside the package (``crystalsearch/models/index``)."""
    from crystalsearch.model.checkpoint import shipped_models_dir

    return shipped_models_dir() / "index"


# The default catalog's release and label version, part of the cached default index's folder name: the index
# stores every material's labels, so a revised join (labels2: formation energy and band gap from one 2018
# release first, crystalsearch/data/catalog_data.py) builds a fresh index instead of showing the old values.
CATALOG_TAG = "mp2025-labels2"


def cache_index_dir(encoder_hash: str) -> Path:
    """``<cache>/index/<CATALOG_TAG>-<encoder hash>``: one default index per catalog (release and labels)
    and encoder."""
    from crystalsearch.paths import cache_dir

    return cache_dir() / "index" / f"{CATALOG_TAG}-{encoder_hash}"


def default_encoder(*, notify: Callable[[str], None] = notify_stderr) -> Encoder:
    """The shipped default encoder, or (with a message) an untrained random one if it is missing."""
    from crystalsearch.model.embed import Encoder

    try:
        return Encoder.load("default")
    except CheckpointError as exc:
        where = str(exc).split(": ", 1)[0]
        notify(
            f"note: no trained default encoder ({where}); using an untrained random encoder (seed 0), "
            "so similarities reflect composition and local geometry only"
        )
        return Encoder.random(seed=0)


def default_index(
    *,
    encoder: Encoder | None = None,
    progress: bool | Callable[[int], None] = True,
    notify: Callable[[str], None] = notify_stderr,
    build: bool = True,
) -> tuple[Path, Encoder]:
    """The default index (shipped, else cached, else built now) and the encoder that goes with it."""
    enc = encoder or default_encoder(notify=notify)
    shipped = shipped_index_dir()
    if (shipped / MANIFEST).is_file():
        manifest = read_manifest(shipped)
        if manifest.encoder.hash == enc.hash:
            return shipped, enc
        notify(f"note: shipped index is for encoder {manifest.encoder.hash}, not {enc.hash}; using a cached index")
    target = cache_index_dir(enc.hash)
    work = target.with_name(target.name + ".partial")
    if not (target / MANIFEST).is_file() and build and (work / ".lock").exists():
        from crystalsearch.catalog.manifest import locked

        with locked(work, exclusive=False, timeout=1800.0):  # another process may be building it right now
            pass
    if not (target / MANIFEST).is_file():
        if not build:
            raise IndexFileError(
                f"no default index for encoder {enc.hash} yet ({target}); it is built on the first "
                "`crystalsearch similar` or by `crystalsearch index build`"
            )
        notify(
            "Building the default search index of the Materials Project release 2025.02.12 (170,466 "
            f"materials) with encoder {enc.name} ({enc.hash}) into {target}. This happens once and "
            "takes a few minutes; an interrupted build resumes where it stopped."
        )
        from crystalsearch.catalog.build import build_index

        build_index("all", encoder=enc, out=target, progress=progress)
    return target, enc
