"""`crystalsearch info`: what data, models and indexes this installation has (nothing heavy imported)."""

from __future__ import annotations

import gzip
import json
import platform
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import typer

from crystalsearch.cli.common import add_command, console, examples, one_line_errors, print_json

PACKAGES = ("torch", "faiss-cpu", "pymatgen", "sqlalchemy", "spglib", "numpy", "typer", "rich", "mp-api")


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _data_files() -> list[dict[str, Any]]:
    from crystalsearch.data.datasets import DATASETS

    folder = Path(str(resources.files("crystalsearch") / "data"))
    files = {
        "mp_structures": "mp_structures.jsonl.gz",
        "mp_elasticity": "mp_elasticity.jsonl.gz",
        "thermal_conductivity": "aflow_thermal_conductivity_300K.csv",
        "melting_temperature": "melting_temperature.csv",
        "mp2025": "mp2025_structures.npz",
    }
    out = []
    for name in DATASETS:
        path = folder / files.get(name, "")
        row: dict[str, Any] = {"dataset": name, "file": path.name, "present": path.is_file()}
        if path.suffix == ".npz" and path.is_file():
            import numpy as np

            with np.load(path) as arrays:  # reads only the small num_sites member
                row.update(bytes=path.stat().st_size, rows=int(arrays["num_sites"].shape[0]))
        elif path.is_file():
            raw = path.read_bytes()
            text = gzip.decompress(raw) if path.suffix == ".gz" else raw
            lines = sum(1 for line in text.splitlines() if line.strip())
            row.update(bytes=len(raw), rows=lines if path.suffix == ".gz" else lines - 1)
        out.append(row)
    return out


def _model(folder: Path) -> dict[str, Any]:
    info: dict[str, Any] = {"name": folder.name, "path": str(folder), "present": (folder / "model.json").is_file()}
    if info["present"]:
        try:
            raw = json.loads((folder / "model.json").read_text())
            info.update(
                hash=str(raw.get("weights_sha256", ""))[:16],
                model_class=raw.get("class"),
                crystalsearch_version=raw.get("crystalsearch_version"),
            )
        except (OSError, ValueError) as exc:
            info["error"] = f"unreadable model.json ({exc})"
    return info


def _models() -> list[dict[str, Any]]:
    from crystalsearch.model.checkpoint import shipped_models_dir

    root = shipped_models_dir()
    out = [_model(root / name) for name in ("crystalclr_cs", "crystalclr")]
    from crystalsearch.data.properties import PROPERTIES
    from crystalsearch.predict.predictor import heads_dir

    for prop in PROPERTIES:  # property heads: an ensemble of seed*/ checkpoints (user's rebuilt ones first)
        seeds = sorted(heads_dir(prop).glob("seed*/model.json"))
        if seeds:
            row = _model(seeds[0].parent)
            row.update(name=f"{prop} head", path=str(heads_dir(prop)), seeds=len(seeds),
                       hash=f"{len(seeds)} seeds")  # fmt: skip
            out.append(row)
    return out


def _index(folder: Path, kind: str) -> dict[str, Any]:
    row: dict[str, Any] = {"kind": kind, "path": str(folder)}
    try:
        raw = json.loads((folder / "manifest.json").read_text())
        from crystalsearch.data.catalog_data import catalog_name

        row.update(
            catalog=catalog_name(dict(raw.get("sources", {}))),
            materials=raw.get("count"),
            encoder=raw.get("encoder", {}),
            faiss_factory=raw.get("faiss_factory"),
            created=raw.get("created"),
            bytes=sum(int(f.get("bytes", 0)) for f in raw.get("files", {}).values()),
        )
    except (OSError, ValueError) as exc:
        row["error"] = f"no readable manifest ({exc.__class__.__name__})"
    return row


def _indexes() -> list[dict[str, Any]]:
    from crystalsearch.catalog.defaults import shipped_index_dir
    from crystalsearch.paths import cache_dir

    out = []
    shipped = shipped_index_dir()
    if (shipped / "manifest.json").is_file():
        out.append(_index(shipped, "shipped default"))
    cached = cache_dir() / "index"
    if cached.is_dir():
        for folder in sorted(cached.iterdir()):
            if folder.is_dir() and not folder.name.endswith(".partial"):
                out.append(_index(folder, "cached default (by encoder hash)"))
    return out


def collect() -> dict[str, Any]:
    from crystalsearch._version import __version__
    from crystalsearch.paths import cache_dir

    cache = cache_dir()
    graphs = cache / "graphs"
    graph_bytes = sum(p.stat().st_size for p in graphs.glob("*.npz")) if graphs.is_dir() else 0
    models = _models()
    default_present = bool(models and models[0]["present"])
    return {
        "crystalsearch": __version__,
        "python": platform.python_version(),
        "packages": _versions(),
        "data": _data_files(),
        "models": models,
        "default_encoder": "crystalclr_cs" if default_present else "missing: similar/index fall back to random(seed=0)",
        "catalog": _catalog(),
        "indexes": _indexes(),
        "cache": {"path": str(cache), "graph_cache_bytes": graph_bytes},
    }


def _catalog() -> dict[str, Any]:
    from crystalsearch.data.catalog_data import CATALOG_COUNTS, RELEASE

    return {"release": RELEASE, "datasets": "mp2025 + mp_elasticity materials not in it", **CATALOG_COUNTS}


def _mib(n: int | None) -> str:
    return "" if not n else f"{n / 2**20:.1f} MiB"


def render(info: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"[bold]crystalsearch {info['crystalsearch']}[/] (Python {info['python']})  "
                  + ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v), highlight=False)  # fmt: skip
    data = Table(title="data", title_justify="left")
    for col in ("dataset", "file", "rows", "size"):
        data.add_column(col)
    for d in info["data"]:
        data.add_row(
            d["dataset"],
            d["file"],
            f"{d.get('rows', 0):,}" if d["present"] else "[red]missing[/]",
            _mib(d.get("bytes")),
        )
    console.print(data)
    models = Table(title="models", title_justify="left")
    for col in ("model", "hash", "status"):
        models.add_column(col)
    for m in info["models"]:
        models.add_row(m["name"], m.get("hash", ""), "present" if m["present"] else "[yellow]missing[/]")
    console.print(models)
    console.print(f"default encoder: {info['default_encoder']}", highlight=False)
    cat = info["catalog"]
    from crystalsearch.data.properties import REGISTRY

    counts = ", ".join(f"{p.label} {cat[p.column]:,}" for p in REGISTRY if p.column in cat)
    console.print(f"default catalog: {cat['release']}, {cat['materials']:,} materials; with labels: {counts}",
                  highlight=False)  # fmt: skip
    indexes = Table(title="indexes", title_justify="left")
    for col in ("index", "materials", "encoder", "size", "path"):
        indexes.add_column(col)
    for ix in info["indexes"]:
        enc = ix.get("encoder") or {}
        indexes.add_row(ix["kind"], f"{ix.get('materials') or 0:,}", f"{enc.get('name', '?')} ({enc.get('hash', '?')})",
                        _mib(ix.get("bytes")), ix["path"])  # fmt: skip
    if not info["indexes"]:
        indexes.add_row("none yet", "", "", "", "built on first `crystalsearch similar`")
    console.print(indexes)
    console.print(f"cache: {info['cache']['path']} (graph cache {_mib(info['cache']['graph_cache_bytes']) or 'empty'})",
                  highlight=False)  # fmt: skip


@one_line_errors
def info(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Show which datasets, models and search indexes are present, and where the cache is."""
    data = collect()
    if json_out:
        print_json(data, command="info")
    else:
        render(data)


def register(app: typer.Typer) -> None:
    """Attach the `info` command to the application."""
    add_command(app, info, "info", epilog=examples("crystalsearch info", "crystalsearch info --json"))
