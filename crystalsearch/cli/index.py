"""`crystalsearch index build|add|info`: write, extend and inspect similarity-search indexes.

Structures from files get ids from their file names: the stem (``a/x.cif`` -> ``x``), with
``#block`` for the blocks of a multi-block CIF and ``#N`` for the items of a JSON list; ``--id``
names them explicitly. An id that is already in the index (also with other case), used twice in one
batch, or not printable on one line is refused with a one-line error (the other structures are still
added; exit code 2). The rules live in :mod:`crystalsearch.catalog.inputs`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from crystalsearch.catalog.inputs import material_id, name_structures
from crystalsearch.cli.common import (
    add_command,
    console,
    err_console,
    examples,
    fail,
    one_line_errors,
    print_error,
    print_json,
    sub_app,
)

if TYPE_CHECKING:
    from crystalsearch.catalog.inputs import Gathered
    from crystalsearch.catalog.manifest import Manifest
    from crystalsearch.catalog.shard import ShardedBuild

__all__ = ["index_summary", "material_id", "name_structures", "register"]

index_app = sub_app("Build, extend and inspect similarity-search indexes.", no_args_is_help=True)


def _summary_table(title: str, rows: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, str(value))
    console.print(table)


def index_summary(folder: Path, *, verify: str = "full") -> dict[str, Any]:
    """Manifest + database summary of an index folder (for `index info`); every file is hashed in full unless
    ``verify="fast"`` (then as when an index is opened, see :mod:`crystalsearch.catalog.manifest`)."""
    from crystalsearch.catalog.db import MetadataDB
    from crystalsearch.catalog.manifest import DB_FILE, read_manifest, verify_files

    manifest = read_manifest(folder)
    verify_files(folder, manifest, verify="full" if verify == "full" else "fast")  # type: ignore[arg-type]
    db = MetadataDB(folder / DB_FILE)
    try:
        summary = db.summary()
    finally:
        db.close()
    from crystalsearch.data.catalog_data import catalog_name

    return {"path": str(folder), "checksums": "ok", "catalog": catalog_name(dict(manifest.sources)),
            **manifest.to_dict(), "database": summary}  # fmt: skip


def _notify(message: str) -> None:
    err_console.print(message, highlight=False, markup=False)


@one_line_errors
def build(
    paths: list[str] = typer.Argument(None, metavar="[PATHS]...", help="Structure files, folders or globs to index."),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="Shipped data to index: all or one dataset (`crystalsearch info` lists them); default all unless "
        "PATHS are given.",
    ),
    encoder: str = typer.Option(
        "default",
        "--encoder",
        help="default, a model installed by `crystalsearch train`, a checkpoint folder, or random[:SEED].",
    ),  # fmt: skip
    out: Path | None = typer.Option(None, "--out", help="Index folder (default: the default index in the cache)."),
    faiss_factory: str = typer.Option(
        "auto",
        "--faiss-factory",
        help="FAISS factory: auto (exact Flat up to 50,000 materials, IVF above), Flat, HNSW32, IVF1024,Flat...",
    ),  # fmt: skip
    ids: list[str] = typer.Option(
        [], "--id", help="Name the structures of PATHS, in order (repeat once per structure; default: file stems)."
    ),  # fmt: skip
    from_mp: bool = typer.Option(
        False, "--from-mp", help="Download from the Materials Project (needs mp-api, MP_API_KEY)."
    ),  # fmt: skip
    mp_elements: str | None = typer.Option(None, "--mp-elements", help="With --from-mp: with these elements."),
    mp_chemsys: str | None = typer.Option(None, "--mp-chemsys", help="With --from-mp: a chemical system (Li-Fe-O)."),
    mp_limit: int | None = typer.Option(None, "--mp-limit", min=1, help="With --from-mp: at most this many materials."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Start over instead of resuming an interrupted build."),
    chunk_size: int = typer.Option(
        1024, "--chunk-size", min=1, help="Structures per resumable chunk (the unit of work of a rank under torchrun)."
    ),  # fmt: skip
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Embedding processes (default: 2 on CPU from 4,096 structures, else 1)."
    ),  # fmt: skip
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Embed structures and write a FAISS index + SQLite metadata + manifest.json (resumable, atomic). Under
    `torchrun --nproc_per_node N -m crystalsearch index build ...` the N processes share the embedding and
    rank 0 writes the index (and the output)."""
    from crystalsearch.catalog.defaults import cache_index_dir
    from crystalsearch.catalog.inputs import gather_entries
    from crystalsearch.catalog.shard import build_launched
    from crystalsearch.cli import encoders

    default_target = not paths and dataset in (None, "all") and not from_mp
    if out is None and not default_target:
        raise fail("--out is required unless building the default index (all shipped structures)")
    t0 = time.perf_counter()
    enc = encoders.load(encoder)
    gathered = gather_entries(paths, dataset=dataset, ids=ids or None, mp=_mp_query(from_mp, mp_elements, mp_chemsys,
                              mp_limit))  # fmt: skip
    main = os.environ.get("RANK", "0") == "0"
    for err in gathered.failed if main else ():
        print_error(str(err))
    target = out if out is not None else cache_index_dir(enc.hash)
    built = build_launched(gathered.entries, encoder=enc, out=target, faiss_factory=faiss_factory,
                           resume=not no_resume, chunk_size=chunk_size, workers=workers)  # fmt: skip
    if built.manifest is not None:  # only rank 0 reports
        _render_build(target, built.manifest, built, gathered, seconds=time.perf_counter() - t0, json_out=json_out)
    raise typer.Exit(gathered.exit_code)


def _mp_query(from_mp: bool, elements: str | None, chemsys: str | None, limit: int | None) -> Any:
    if not from_mp:
        return None
    from crystalsearch.catalog.filters import parse_elements
    from crystalsearch.data.materials_project import MPQuery

    return MPQuery(elements=parse_elements(elements, option="--mp-elements"), chemsys=chemsys, limit=limit)


def _render_build(
    target: Path, manifest: Manifest, built: ShardedBuild, gathered: Gathered, *, seconds: float, json_out: bool
) -> None:
    shards = [s.__dict__ for s in built.shards]
    failed = gathered.failed
    if json_out:
        print_json({"path": str(target), "seconds": round(seconds, 2), "failed": [str(e) for e in failed],
                    **({"ranks": shards} if shards else {}), **manifest.to_dict()}, command="index build")  # fmt: skip
        return
    rows = {"index": target, "materials": f"{manifest.count:,}",
            "encoder": f"{manifest.encoder.name} ({manifest.encoder.hash})", "faiss": manifest.faiss_factory,
            "time": f"{seconds:.1f} s"}  # fmt: skip
    if manifest.recall_at_10 is not None:
        rows["recall@10 vs exact"] = f"{manifest.recall_at_10:.3f}"
    if gathered.skipped_disordered:
        rows["skipped (disordered)"] = gathered.skipped_disordered
    if failed:
        rows["failed inputs"] = len(failed)
    if shards:
        rows["ranks"] = ", ".join(f"{s['rank']}: {s['embedded']} chunks embedded, {s['reused']} reused"
                                  for s in shards)  # fmt: skip
    _summary_table("index built", rows)


def _folder(index: str) -> Path:
    from crystalsearch.catalog.defaults import default_index, shipped_index_dir

    if index != "default":
        return Path(index)
    folder, _ = default_index(notify=_notify)
    if folder == shipped_index_dir():
        raise fail("the shipped default index is read-only; build your own with "
                   "`crystalsearch index build --out DIR` and add to it with --index DIR")  # fmt: skip
    return folder


@one_line_errors
def add(
    paths: list[str] = typer.Argument(..., metavar="PATHS...", help="Structure files, folders or globs."),
    index: str = typer.Option("default", "--index", help="Index folder (default: the default index in the cache)."),
    ids: list[str] = typer.Option(
        [],
        "--id",
        help="Name the structures, in order (repeat once per structure; default: file stems, e.g. a/x.cif -> x).",
    ),  # fmt: skip
    json_out: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Add your own structures to an index (incremental). Ids are file stems or --id; an id already in the
    index or used twice is refused with a one-line error, the others are still added (exit code 2)."""
    from crystalsearch.catalog.inputs import add_files

    folder = _folder(index)
    outcome = add_files(paths, index=folder, ids=ids or None)
    for err in outcome.failed:
        print_error(str(err))
    result = outcome.report
    added = list(result.added) if result else []
    if json_out:
        print_json({"index": str(folder), "added": added, "refused": [e.source for e in outcome.refused],
                    "materials": result.manifest.count if result else None,
                    "failed": [str(e) for e in outcome.failed]}, command="index add")  # fmt: skip
    else:
        console.print(f"added {len(added)} structure(s) to {folder}", highlight=False, markup=False)
    raise typer.Exit(outcome.exit_code)


@one_line_errors
def info(
    index: str = typer.Option("default", "--index", help="Index folder (default: the default index)."),
    verify: bool = typer.Option(False, "--verify", hidden=True, help="Kept for scripts: files are always hashed."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarise an index: encoder, counts, sources, property coverage, files and checksums (every file is
    hashed in full and compared with manifest.json)."""
    from crystalsearch.catalog.defaults import default_index

    folder = Path(index) if index != "default" else default_index(notify=_notify, build=False)[0]
    del verify  # every file is hashed in full in any case
    summary = index_summary(folder, verify="full")
    if json_out:
        print_json(summary, command="index info")
        return
    db, enc = summary["database"], summary["encoder"]
    from crystalsearch.data.catalog_data import catalog_name

    rows = {
        "index": folder, "catalog": catalog_name(summary["sources"]), "materials": f"{summary['count']:,}",
        "encoder": f"{enc['name']} (hash {enc['hash']}, dim {enc['dim']})",
        "search": f"{summary['faiss_factory']}, {summary['metric']} of [CrystalCLR h | structure fingerprint]",
        "sources": ", ".join(f"{k}: {v:,}" for k, v in summary["sources"].items()),
        "properties": ", ".join(f"{k}: {v:,} ({db['units'].get(k, '')})" for k, v in db["property_coverage"].items()),
        "crystal systems": ", ".join(f"{k}: {v:,}" for k, v in sorted(db["crystal_systems"].items())),
        "files": ", ".join(f"{k} ({v['bytes'] / 2**20:.1f} MiB)" for k, v in summary["files"].items()),
        "checksums": "ok (every file hashed)", "created": summary["created"], "updated": summary["updated"],
        "versions": ", ".join(f"{k} {v}" for k, v in summary["versions"].items()),
    }  # fmt: skip
    if summary.get("recall_at_10") is not None:
        rows["recall@10 vs exact"] = f"{summary['recall_at_10']:.3f}"
    _summary_table("index", rows)


add_command(index_app, build, "build", epilog=examples(
    "crystalsearch index build --dataset all --out my_index",
    "crystalsearch index build my_structures/ --encoder random --out scratch_index",
    "crystalsearch index build --from-mp --mp-chemsys Li-Fe-O --out lfo_index",
))  # fmt: skip
add_command(index_app, add, "add", epilog=examples(
    "crystalsearch index add my_structures/ --index my_index",
    "crystalsearch index add a/x.cif --id x-relaxed --index my_index",
))  # fmt: skip
add_command(index_app, info, "info", epilog=examples(
    "crystalsearch index info", "crystalsearch index info --index my_index --json"
))  # fmt: skip


def register(app: typer.Typer) -> None:
    """Attach the `index` command group to the application."""
    app.add_typer(index_app, name="index")
