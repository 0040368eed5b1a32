"""Index folders: file names, ``manifest.json``, checksums, locking and atomic writes.

An index folder holds ``index.faiss`` (L2-normalised embeddings, exact inner product by default),
``metadata.sqlite`` (one row per material, WAL mode) and ``manifest.json`` (encoder hash and dimension,
metric, counts, SHA-256 of both files, versions, creation time). Checksums are verified when an index
is opened. A file is not hashed again when it is unchanged since the last successful verification
(remembered in ``<cache>/verified.json``): same size, mtime, inode and ctime (which any write, and any
``os.utime`` that puts an old mtime back, moves on; no system call sets it) and the same SHA-256 of a
sample of the file (its first 64 KiB, 16 blocks of 4 KiB spread evenly over it and its last 4 KiB, which
catches a rewrite on file systems with coarse ctimes). Stat and sample cost under 0.5 ms per file
whatever its size; hashing the 170k index in full takes ~0.7 s (145 MB FAISS file 0.2 s, 310 MB
database 0.5 s; one core, files in the page cache). ``verify="full"`` (and ``index info``) always
hashes everything.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crystalsearch import atomic
from crystalsearch._version import __version__
from crystalsearch.atomic import atomic_write_bytes, file_mode, file_sha256, swap_in  # noqa: F401 - re-exported for search.build
from crystalsearch.errors import IndexFileError

if TYPE_CHECKING:
    from crystalsearch.model.embed import Encoder

INDEX_FILE = "index.faiss"
DB_FILE = "metadata.sqlite"
MANIFEST = "manifest.json"
LOCK_FILE = atomic.LOCK_FILE
JOURNAL = "add.journal.json"
FORMAT_VERSION = 1
METRIC = "inner_product"

Verify = Literal["full", "fast", "none"]


@dataclass(frozen=True)
class EncoderInfo:
    """Which encoder produced the embeddings (``hash`` must match the encoder used for queries)."""

    name: str
    hash: str
    dim: int
    radius: float
    max_neighbors: int


def encoder_ref(encoder: Encoder) -> str:
    """How to load ``encoder`` again (shipped name, ``random(seed=N)`` or an absolute folder path)."""
    name = encoder.name
    if name.startswith("random(") or name in ("default", "crystalclr", "crystalclr_cs"):
        return name
    path = Path(name)
    return str(path.resolve()) if path.exists() else name


def load_encoder(ref: str) -> Encoder:
    """Inverse of :func:`encoder_ref`."""
    from crystalsearch.model.embed import Encoder

    if ref.startswith("random(seed=") and ref.endswith(")"):
        return Encoder.random(seed=int(ref[len("random(seed=") : -1]))
    return Encoder.load(ref)


def encoder_info(encoder: Encoder) -> EncoderInfo:
    return EncoderInfo(encoder_ref(encoder), encoder.hash, encoder.dim, encoder.radius, encoder.max_neighbors)


@dataclass(frozen=True)
class FileInfo:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json``."""

    encoder: EncoderInfo
    count: int
    files: Mapping[str, FileInfo]
    faiss_factory: str = "Flat"
    metric: str = METRIC
    normalized: bool = True
    sources: Mapping[str, int] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    symprec: float = 0.1
    recall_at_10: float | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    updated: str = ""
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files"] = {k: asdict(v) for k, v in self.files.items()}
        out["sources"] = dict(self.sources)
        out["units"] = dict(self.units)
        out["versions"] = dict(self.versions)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str) -> Manifest:
        try:
            if int(data["format_version"]) != FORMAT_VERSION:
                raise IndexFileError(
                    f"{where}: index format {data['format_version']}, this crystalsearch reads {FORMAT_VERSION}"
                )
            return cls(
                encoder=EncoderInfo(**data["encoder"]),
                count=int(data["count"]),
                files={k: FileInfo(**v) for k, v in data["files"].items()},
                faiss_factory=str(data["faiss_factory"]),
                metric=str(data["metric"]),
                normalized=bool(data["normalized"]),
                sources=dict(data.get("sources", {})),
                units=dict(data.get("units", {})),
                symprec=float(data.get("symprec", 0.1)),
                recall_at_10=data.get("recall_at_10"),
                versions=dict(data.get("versions", {})),
                created=str(data.get("created", "")),
                updated=str(data.get("updated", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexFileError(f"{where}: malformed manifest ({type(exc).__name__}: {exc})") from None

    def touched(self, **changes: Any) -> Manifest:
        return replace(self, updated=now(), **changes)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Versions of the packages that shape an index (read from metadata, nothing imported)."""
    from importlib import metadata

    out = {"crystalsearch": __version__}
    for dist in ("faiss-cpu", "sqlalchemy", "spglib", "numpy", "torch", "pymatgen"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def file_info(path: Path) -> FileInfo:
    return FileInfo(sha256=file_sha256(path), bytes=path.stat().st_size)


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise IndexFileError(f"{folder}: not an index folder (no {MANIFEST})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFileError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(data, dict):
        raise IndexFileError(f"{path}: malformed manifest (not a JSON object)")
    return Manifest.from_dict(data, where=str(path))


def write_manifest(folder: Path, manifest: Manifest) -> None:
    atomic_write_bytes(folder / MANIFEST, (json.dumps(manifest.to_dict(), indent=2) + "\n").encode())


# -- verification ------------------------------------------------------------------------------------
def _stamp_file() -> Path:
    from crystalsearch.paths import cache_dir

    return cache_dir() / "verified.json"


SAMPLE_HEAD = 64 << 10
SAMPLE_BLOCK = 4 << 10
SAMPLE_BLOCKS = 16


def sample_sha256(path: Path, size: int) -> str:
    """SHA-256 of the head, :data:`SAMPLE_BLOCKS` evenly spread blocks and the tail of a file of ``size`` bytes."""
    import hashlib

    h = hashlib.sha256()
    offsets = [0, *(SAMPLE_HEAD + i * max(0, size - SAMPLE_HEAD) // SAMPLE_BLOCKS for i in range(SAMPLE_BLOCKS))]
    with open(path, "rb") as fh:
        for n, offset in enumerate([*offsets, max(0, size - SAMPLE_BLOCK)]):
            fh.seek(offset)
            h.update(fh.read(SAMPLE_HEAD if n == 0 else SAMPLE_BLOCK))
    return h.hexdigest()


def _stamp(path: Path) -> list[Any]:
    """What must be unchanged for a verified file to be trusted without hashing it all (see the module doc)."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, sample_sha256(path, st.st_size)]


def _load_stamps() -> dict[str, Any]:
    try:
        data = json.loads(_stamp_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_stamps(stamps: dict[str, Any]) -> None:
    path = _stamp_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(stamps).encode())
    except OSError:
        pass  # a read-only cache only costs re-hashing next time


def verify_files(folder: Path, manifest: Manifest, *, verify: Verify = "fast") -> None:
    """Check that every file in the manifest exists with its recorded size and SHA-256."""
    if verify == "none":
        return
    stamps = _load_stamps() if verify == "fast" else {}
    changed = False
    for name, info in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise IndexFileError(f"{path}: missing index file (rebuild with `crystalsearch index build`)")
        key = str(path.resolve())
        stamp = _stamp(path)
        if stamps.get(key) == [*stamp, info.sha256]:
            continue
        if stamp[0] != info.bytes or file_sha256(path) != info.sha256:
            raise IndexFileError(
                f"{path}: checksum mismatch with {MANIFEST} (corrupted or modified outside crystalsearch); "
                "rebuild with `crystalsearch index build`"
            )
        stamps[key] = [*stamp, info.sha256]
        changed = True
    if changed:
        _save_stamps(stamps)


def remember_verified(folder: Path, manifest: Manifest) -> None:
    """Record freshly written files as verified (their checksums were just computed)."""
    stamps = _load_stamps()
    for name, info in manifest.files.items():
        path = folder / name
        if path.is_file():
            stamps[str(path.resolve())] = [*_stamp(path), info.sha256]
    _save_stamps(stamps)


# -- locking and folder swaps -------------------------------------------------------------------------
def locked(folder: Path, *, exclusive: bool, timeout: float = 60.0) -> contextlib.AbstractContextManager[None]:
    """Hold ``folder/.lock`` (shared for readers, exclusive for writers); no-op on read-only folders."""
    busy = "another process is writing this index; try again later"
    return atomic.locked(folder, exclusive=exclusive, timeout=timeout, busy=busy, error=IndexFileError)
