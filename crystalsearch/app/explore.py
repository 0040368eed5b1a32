"""The novelty jobs and the catalog map of the app.

Novelty: :func:`crystalsearch.identity.novelty.check_novelty` in a thread per job, its progress callback
counting finished files; exports in the CLI's JSON envelope and as CSV.
Map: a UMAP (cosine, 15 neighbours) of up to ``MAP_POINTS`` catalog representations (evenly spread rows),
computed once per index (about a minute on 2 cores for 8,000 points) and cached in the cache home; indexes
under ``UMAP_MIN`` materials get the first two principal components instead. A query is placed at the
similarity-weighted mean position of its ``PLACE_K`` most similar map points.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.app.state import NoveltyJob
from crystalsearch.errors import CrystalSearchError, InputError

if TYPE_CHECKING:
    from crystalsearch.app.state import AppState

__all__ = ["MAP_POINTS", "catalog_map", "folder_files", "job_status", "novelty_csv", "novelty_json", "start_novelty"]

MAP_POINTS = 8000
UMAP_MIN = 100  # fewer materials: principal components (UMAP needs more points than neighbours)
PLACE_K = 5
MAP_VERSION = 2  # in the cache key: a new layout method recomputes
CSV_FIELDS = ("label", "status", "formula", "spacegroup", "material_id", "rms_angstrom", "duplicate_of", "reason")


def folder_files(text: str, *, limit: int) -> list[Path]:
    """The structure files under a folder the user typed; nothing outside it (links leading out are skipped)."""
    from crystalsearch.io.sources import expand_sources

    folder = Path(text.strip()).expanduser()
    if not text.strip() or not folder.is_dir():
        raise InputError(text.strip() or "folder", "not a folder on this machine")
    root = folder.resolve()
    files = []
    for entry in expand_sources([str(folder)]):
        if isinstance(entry, InputError) or entry.path is None:
            continue
        if entry.path.resolve().is_relative_to(root):
            files.append(entry.path)
        if len(files) > limit:
            raise InputError(str(folder), f"more than {limit} structure files (at most {limit} per check)")
    if not files:
        raise InputError(str(folder), "no structure files (CIF, POSCAR, JSON) in this folder")
    return files


def start_novelty(state: AppState, files: Sequence[Path], display: Callable[[str], str]) -> NoveltyJob:
    """Check ``files`` against the app's index in a background thread; poll :func:`job_status`."""
    index = str(state.catalog.path)
    job = NoveltyJob(uuid.uuid4().hex[:12], len(files), Path(index), display=display)

    def advance(n: int) -> None:
        job.done += n

    def run() -> None:
        from crystalsearch.identity.novelty import check_novelty

        try:
            job.report = check_novelty([str(f) for f in files], index=index, progress=advance)
        except (CrystalSearchError, OSError) as exc:
            job.error = str(exc)
        finally:
            job.seconds = round(time.perf_counter() - job.started, 2)

    state.jobs[job.key] = job
    threading.Thread(target=run, name=f"novelty-{job.key}", daemon=True).start()
    return job


def _candidates(job: NoveltyJob) -> list[dict[str, Any]]:
    assert job.report is not None  # noqa: S101 - called only once the job has finished
    display = job.display
    out = []
    for c in job.report.candidates:
        d = c.to_dict()
        d["label"] = display(d["label"])
        d["reason"] = display(d.get("reason") or "")
        d["duplicate_of"] = display(d["duplicate_of"]) if d.get("duplicate_of") else None
        out.append(d)
    return out


def job_status(job: NoveltyJob, *, link: str) -> dict[str, Any]:
    """Progress while running; then the summary, the table (HTML) and the counts."""
    from crystalsearch.html import novelty_table

    finished = job.report is not None or job.error is not None
    out: dict[str, Any] = {"key": job.key, "done": job.done, "total": job.total, "error": job.error,
                           "finished": finished, "seconds": job.seconds}  # fmt: skip
    if job.report is not None:
        report = job.report.to_dict()
        out.update(report=report, html=novelty_table(report, _candidates(job), link=link))
    return out


def novelty_json(job: NoveltyJob) -> str:
    from crystalsearch.cli.schema import response

    assert job.report is not None  # noqa: S101 - called only once the job has finished
    units = {"rms_angstrom": "Å (StructureMatcher RMS displacement, normalised by (V/n)^(1/3))"}
    return json.dumps(response("novelty", _candidates(job), units=units, **job.report.to_dict()), indent=1)


def novelty_csv(job: NoveltyJob) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for c in _candidates(job):
        writer.writerow(c)
    return out.getvalue()


# -- the map --------------------------------------------------------------------------------------------
def _axes(state: AppState) -> dict[str, Any]:
    """Rows, 2D positions and projection of the map (memory, then the cache home, then computed)."""
    from crystalsearch.atomic import atomic_write
    from crystalsearch.paths import cache_dir

    catalog = state.catalog
    faiss_sha = next((f.sha256 for name, f in catalog.manifest.files.items() if name.endswith(".faiss")), "")
    key = f"v{MAP_VERSION}-{catalog.manifest.encoder.hash}-{len(catalog)}-{faiss_sha[:16]}"
    if state.map_cache.get("key") == key:
        return state.map_cache
    path = cache_dir() / "app" / f"map-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            axes = {name: data[name] for name in ("rows", "xy", "vectors", "method")}
    else:
        n = len(catalog)
        rows = np.unique(np.linspace(0, n - 1, min(n, MAP_POINTS)).astype(np.int64))
        vectors = _unit(catalog.vectors.rows(rows).astype(np.float32))
        method = "umap" if len(rows) >= UMAP_MIN else "pca"
        xy = _umap(vectors) if method == "umap" else _pca(vectors)
        axes = {"rows": rows, "xy": xy.astype(np.float32), "vectors": vectors, "method": np.array(method)}
        buffer = io.BytesIO()
        np.savez(buffer, **axes)
        atomic_write(path, lambda fh: fh.write(buffer.getvalue()))
    materials = catalog.db.materials([int(r) for r in axes["rows"]])
    state.map_cache = {**axes, "key": key, "materials": [materials[int(r)] for r in axes["rows"]]}
    return state.map_cache


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _umap(vectors: np.ndarray) -> np.ndarray:
    import warnings

    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": seeded on purpose
        reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=0)
        return np.asarray(reducer.fit_transform(vectors))


def _pca(vectors: np.ndarray) -> np.ndarray:
    x = vectors.astype(np.float64) - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def place(axes: dict[str, Any], vector: np.ndarray) -> tuple[float, float]:
    """Where a query goes on the map: the similarity-weighted mean of its ``PLACE_K`` most similar points."""
    sims = axes["vectors"] @ _unit(vector[None, :].astype(np.float32))[0]
    near = np.argsort(-sims)[:PLACE_K]
    weights = np.maximum(sims[near], 1e-6)
    x, y = (weights[:, None] * axes["xy"][near]).sum(axis=0) / weights.sum()
    return float(x), float(y)


def catalog_map(state: AppState, prop: str, keys: Sequence[str]) -> dict[str, Any]:
    """Points (x, y, id, formula, value of ``prop``) and the kept queries ``keys`` placed on the map."""
    from crystalsearch.data.properties import REGISTRY

    columns = {p.column for p in REGISTRY} | {"density", "volume_per_atom", "nsites", "spacegroup_number"}
    if prop not in columns:
        raise InputError("colour by", f"unknown column {prop!r}")
    t0 = time.perf_counter()
    with state.lock:
        axes = _axes(state)
        queries = []
        for key in keys:
            q = state.query(key)
            x, y = place(axes, state.catalog.represent([q.structure])[0])
            queries.append({"key": key, "label": q.label, "x": round(float(x), 4), "y": round(float(y), 4)})
    mats = axes["materials"]
    values = [getattr(m, prop) for m in mats]
    return {
        "x": [round(float(v), 4) for v in axes["xy"][:, 0]], "y": [round(float(v), 4) for v in axes["xy"][:, 1]],
        "ids": [m.material_id for m in mats], "formulas": [m.reduced_formula for m in mats],
        "values": [None if v is None else round(float(v), 4) for v in values], "property": prop,
        "queries": queries, "method": str(axes["method"]), "seconds": round(time.perf_counter() - t0, 3),
    }  # fmt: skip
