"""Building indexes: resumable chunked embedding, atomic swap-in, incremental ``add``, the default index.

``build_index`` embeds entries in chunks; every finished chunk (normalised embeddings and space
groups) is saved atomically to ``<out>.partial/``, next to a ``plan.json`` that pins what is being
built (entry fingerprint, encoder hash, chunk size). A build that is killed (even with ``kill -9``)
and started again with the same inputs reuses the finished chunks, so nothing is lost or computed
twice; the final files are written into ``<out>.partial/staging`` and swapped in for ``out`` at once.

``add_to_index`` appends rows under an exclusive lock: the SQLite rows are inserted in one
transaction (WAL: readers keep searching meanwhile), then the FAISS file and the manifest are
replaced atomically. A journal lets the next writer or reader roll back an interrupted add.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.catalog.embedding import auto_workers, embed_entries, run_chunks
from crystalsearch.catalog.manifest import (
    DB_FILE,
    INDEX_FILE,
    JOURNAL,
    Manifest,
    atomic_write_bytes,
    encoder_info,
    file_info,
    load_encoder,
    locked,
    now,
    read_manifest,
    remember_verified,
    swap_in,
    verify_files,
    versions,
    write_manifest,
)  # fmt: skip
from crystalsearch.data.entries import Entry, as_entries, fingerprint
from crystalsearch.errors import CrystalSearchError, IndexFileError
from crystalsearch.structure.fingerprint import DIM as FP_DIM
from crystalsearch.structure.fingerprint import VERSION as FP_VERSION
from crystalsearch.structure.prototype import labels_many
from crystalsearch.structure.symmetry import SYMPREC

if TYPE_CHECKING:
    from crystalsearch.model.embed import Encoder

__all__ = ["AddReport", "add_to_index", "build_index", "check_encoder", "recover"]

PLAN = "plan.json"
EXACT_UP_TO = 50_000


def auto_factory(n: int) -> str:
    """FAISS factory ``index build`` picks for ``n`` materials: exact ``Flat`` up to :data:`EXACT_UP_TO`,
    then ``IVF{nlist},Flat`` with ``nlist`` the power of two nearest ``4 * sqrt(n)`` (170k: ``IVF2048``)."""
    if n <= EXACT_UP_TO:
        return "Flat"
    nlist = 2 ** int(round(np.log2(4 * np.sqrt(n))))
    return f"IVF{nlist},Flat"


Progress = bool | Callable[[int], None]


@contextmanager
def _bar(progress: Progress, total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (``progress=True``), a user callback, or nothing."""
    if callable(progress):
        yield progress
        return
    if not progress:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def partial_dir(out: Path) -> Path:
    """``<out>.partial``: the plan and the finished chunks of a build of ``out`` (see module doc)."""
    return out.with_name(out.name + ".partial")


def chunk_path(work: Path, i: int) -> Path:
    return work / f"chunk_{i:05d}.npz"


def build_plan(entries: Sequence[Entry], encoder: Encoder, chunk_size: int) -> dict[str, Any]:
    """What pins a build: entry fingerprint, encoder hash, chunk size, count (finished chunks are reused only
    under the same plan)."""
    return {"fingerprint": fingerprint(entries), "encoder": encoder.hash, "chunk_size": chunk_size, "n": len(entries)}


def prepare(work: Path, plan: dict[str, Any], *, resume: bool) -> None:
    """Under ``work``'s exclusive lock: drop what another plan (or ``resume=False``) left, pin ``plan``."""
    if not resume or _read_json(work / PLAN) != plan:
        for stale in work.iterdir():
            if stale.name != ".lock":
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    atomic_write_bytes(work / PLAN, json.dumps(plan).encode())


def load_chunk(path: Path, n: int, dim: int) -> dict[str, np.ndarray] | None:
    """A finished chunk of ``n`` entries, or None (absent, torn or of another shape)."""
    try:
        with np.load(path) as data:
            chunk = {k: data[k] for k in ("embeddings", "structure", "spacegroup", "prototype", "n")}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if int(chunk["n"][0]) != n or chunk["embeddings"].shape != (n, dim) or chunk["structure"].shape != (n, FP_DIM):
        return None
    if chunk["spacegroup"].shape != (n,) or chunk["prototype"].shape != (n,):
        return None
    return chunk


def _source_counts(entries: Sequence[Entry]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in entries:
        for s in e.source.split(","):
            counts[s] = counts.get(s, 0) + 1
    return counts


def build_index(
    records_or_dataset: Any,
    *,
    encoder: Encoder,
    out: Path,
    faiss_factory: str = "auto",
    progress: Progress = True,
    resume: bool = True,
    chunk_size: int = 1024,
    workers: int | None = None,
) -> Manifest:
    """Build an index folder ``out`` from a dataset name (``"all"``), a Dataset, Records or Entries.

    Resumable (see module doc). ``workers``: embedding processes (default: 2 for large builds, else
    in-process). ``faiss_factory="auto"`` is exact (``Flat``) up to :data:`EXACT_UP_TO` materials and an
    inverted file above (:func:`auto_factory`). Returns the manifest of the finished index.
    """
    from crystalsearch.catalog.db import RowWriter

    entries = as_entries(records_or_dataset)
    if not entries:
        raise CrystalSearchError("nothing to index: no structures given")
    out = Path(out)
    work = partial_dir(out)
    plan = build_plan(entries, encoder, chunk_size)
    work.mkdir(parents=True, exist_ok=True)
    with locked(work, exclusive=True, timeout=0.0):
        prepare(work, plan, resume=resume)
        staging = work / "staging"
        shutil.rmtree(staging, ignore_errors=True)  # rows are re-inserted from the chunks on every run
        staging.mkdir()
        rows = RowWriter(staging / DB_FILE)
        try:
            vectors = _embed_chunks(entries, encoder=encoder, work=work, rows=rows, chunk_size=chunk_size,
                                    progress=progress, workers=workers)  # fmt: skip
        except BaseException:
            rows.finish(abort=True)
            raise
        rows.finish()
        manifest = _write_index(staging, vectors, entries, encoder=encoder, faiss_factory=faiss_factory)
        out.parent.mkdir(parents=True, exist_ok=True)
        swap_in(staging, out)
    shutil.rmtree(work, ignore_errors=True)
    remember_verified(out, manifest)
    return manifest


def _embed_chunks(
    entries: list[Entry], *, encoder: Encoder, work: Path, rows: Any, chunk_size: int, progress: Progress,
    workers: int | None,
) -> np.ndarray:  # fmt: skip
    """Every chunk's vectors ``[h | s]`` in entry order: finished chunks loaded from ``work``, the others embedded
    (and saved as soon as each is done); each chunk's rows go to ``rows`` as it arrives."""
    starts = list(range(0, len(entries), chunk_size))
    parts = [entries[start : start + chunk_size] for start in starts]
    chunks: dict[int, dict[str, np.ndarray]] = {}

    def done(i: int, chunk: dict[str, np.ndarray], *, save: bool = True) -> None:
        if save:
            save_chunk(chunk_path(work, i), chunk)
        chunks[i] = chunk
        rows.put(starts[i], parts[i], chunk["spacegroup"], chunk["prototype"])

    with _bar(progress, len(entries), f"embedding {len(entries):,} crystals") as advance:
        for i, part in enumerate(parts):
            found = load_chunk(chunk_path(work, i), len(part), encoder.dim)
            if found is not None:
                done(i, found, save=False)
                advance(len(part))
        jobs = [(i, part) for i, part in enumerate(parts) if i not in chunks]
        n_workers = auto_workers(sum(len(p) for _, p in jobs), encoder) if workers is None else workers
        run_chunks(jobs, encoder, workers=n_workers, on_done=done, advance=advance)
    return np.concatenate(
        [np.hstack([chunks[i]["embeddings"], chunks[i]["structure"]]) for i in range(len(parts))]
    ).astype(np.float32)


def _write_index(
    staging: Path, vectors: np.ndarray, entries: Sequence[Entry], *, encoder: Encoder, faiss_factory: str
) -> Manifest:
    """The FAISS file and the manifest of a build, next to its finished database in ``staging``."""
    from crystalsearch.catalog.faiss_index import VectorIndex, make_index, recall_at_k
    from crystalsearch.data.datasets import PROPERTY_UNITS

    factory = auto_factory(len(vectors)) if faiss_factory == "auto" else faiss_factory
    vi = VectorIndex(make_index(vectors, dim=vectors.shape[1], factory=factory))
    vi.write(staging / INDEX_FILE)
    recall = None if vi.exact else recall_at_k(vi.index, vectors)
    for leftover in ("-wal", "-shm"):
        (staging / (DB_FILE + leftover)).unlink(missing_ok=True)
    created = now()
    manifest = Manifest(
        encoder=encoder_info(encoder),
        count=len(entries),
        files={name: file_info(staging / name) for name in (INDEX_FILE, DB_FILE)},
        faiss_factory=factory,
        sources=_source_counts(entries),
        units=dict(PROPERTY_UNITS),
        symprec=SYMPREC,
        recall_at_10=recall,
        versions={**versions(), "fingerprint": FP_VERSION},
        created=created,
        updated=created,
    )
    write_manifest(staging, manifest)
    return manifest


def save_chunk(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from crystalsearch.structure.graph.store import atomic_write_npz

    atomic_write_npz(path, **arrays)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- incremental add ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AddReport:
    """Outcome of :func:`add_to_index`: ids added, ids skipped because already indexed, new manifest."""

    added: tuple[str, ...]
    skipped: tuple[str, ...]
    manifest: Manifest


def check_encoder(manifest: Manifest, encoder: Encoder, *, where: Path) -> None:
    """Refuse an encoder whose weights differ from the index's (naming both)."""
    if encoder.hash != manifest.encoder.hash or encoder.dim != manifest.encoder.dim:
        raise IndexFileError(
            f"{where}: index built with encoder {manifest.encoder.name} (hash {manifest.encoder.hash}), "
            f"but encoder {encoder.name} has hash {encoder.hash}; rebuild the index with "
            f"`crystalsearch index build --encoder {encoder.name}` or query with the index's encoder"
        )


def recover(folder: Path) -> bool:
    """Roll back an interrupted ``add`` (journal present); call under the exclusive lock."""
    from crystalsearch.catalog.db import MetadataDB
    from crystalsearch.catalog.faiss_index import VectorIndex

    journal = _read_json(folder / JOURNAL)
    if journal is None:
        return False
    manifest = read_manifest(folder)
    n0 = int(journal["n0"])
    if manifest.count == n0:
        db = MetadataDB(folder / DB_FILE, readonly=False)
        try:
            db.delete_from(n0)
            db.checkpoint()
        finally:
            db.close()
        vi = VectorIndex.read(folder / INDEX_FILE)
        if vi.ntotal > n0:
            vi.truncate(n0)
            vi.write(folder / INDEX_FILE)
        files = {name: file_info(folder / name) for name in (INDEX_FILE, DB_FILE)}
        write_manifest(folder, manifest.touched(files=files))
    (folder / JOURNAL).unlink(missing_ok=True)
    return True


def add_to_index(
    entries_or_structures: Any, *, index: Path, encoder: Encoder | None = None, progress: Progress = True
) -> AddReport:
    """Add entries (or ``(id, Structure)`` pairs) to the index folder ``index``; existing ids are skipped."""
    from crystalsearch.catalog.db import MetadataDB, entry_rows
    from crystalsearch.catalog.faiss_index import VectorIndex
    from crystalsearch.catalog.reader import MetadataReader
    from crystalsearch.structure.fingerprint import fingerprints

    index = Path(index)
    entries = as_entries(entries_or_structures)
    with locked(index, exclusive=True, timeout=600.0):
        recover(index)
        manifest = read_manifest(index)
        verify_files(index, manifest)
        enc = encoder or load_encoder(manifest.encoder.name)
        check_encoder(manifest, enc, where=index)
        reader = MetadataReader(index / DB_FILE)
        try:
            present = reader.row_ids(e.material_id for e in entries)
        finally:
            reader.close()
        db = MetadataDB(index / DB_FILE, readonly=False)
        try:
            new = [e for e in entries if e.material_id not in present]
            if not new:
                return AddReport((), tuple(present), manifest)
            vi = VectorIndex.read(index / INDEX_FILE)
            n0 = vi.ntotal
            if n0 != manifest.count or db.max_id() != n0 - 1:
                raise IndexFileError(f"{index}: FAISS rows ({n0}) and database rows disagree; rebuild the index")
            with _bar(progress, len(new), f"embedding {len(new):,} crystals") as advance:
                vectors = embed_entries(new, enc, advance=advance)
            if vi.dim == enc.dim + FP_DIM:
                vectors = np.hstack([vectors, fingerprints([(e.lattice, e.frac_coords) for e in new])])
            labels = labels_many(e.cell() for e in new)
            symmetries = [lab.symmetry() for lab in labels]
            rows = entry_rows(new, symmetries, start=n0, prototypes=[lab.prototype for lab in labels])
            atomic_write_bytes(index / JOURNAL, json.dumps({"n0": n0, "added": len(new)}).encode())
            db.insert(rows)
            vi.add(vectors)
            vi.write(index / INDEX_FILE)
            db.checkpoint()
        finally:
            db.close()
        sources = dict(manifest.sources)
        for k, v in _source_counts(new).items():
            sources[k] = sources.get(k, 0) + v
        files = {name: file_info(index / name) for name in (INDEX_FILE, DB_FILE)}
        updated = manifest.touched(count=n0 + len(new), files=files, sources=sources, versions=versions())
        write_manifest(index, updated)
        (index / JOURNAL).unlink(missing_ok=True)
        remember_verified(index, updated)
    return AddReport(tuple(e.material_id for e in new), tuple(present), updated)
