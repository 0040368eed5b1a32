"""`crystalsearch index build|add|info`: write, extend and inspect similarity-search indexes.

Structures from files get ids from their file names: the stem (``a/x.cif`` -> ``x``), with
``#block`` for the blocks of a multi-block CIF and ``#N`` for the items of a JSON list; ``--id``
names them explicitly. An id that is already in the index, or used twice in one batch, is refused
with a one-line error (the other structures are still added; exit code 2).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

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
    from pymatgen.core import Structure

    from crystalsearch.errors import InputError

index_app = sub_app("Build, extend and inspect similarity-search indexes.", no_args_is_help=True)


def material_id(source_id: str) -> str:
    """The id a structure file gets in an index: its file stem (plus ``#block``/``#N``); MP ids unchanged."""
    path, sep, part = source_id.partition("#")
    name = Path(path).name
    for suffix in (".gz",):
        name = name.removesuffix(suffix)
    stem = Path(name).stem if "." in name else name
    return stem + (f"#{part}" if sep else "")


def name_structures(
    items: Iterable[tuple[str, Structure]], *, ids: list[str] | None, taken: set[str] | None = None
) -> tuple[list[tuple[str, Structure]], list[InputError]]:
    """(id, structure) pairs named by file stem or ``ids``; ids used twice or in ``taken`` become errors."""
    from crystalsearch.errors import InputError

    items = list(items)
    if ids and len(ids) != len(items):
        raise InputError("--id", f"{len(ids)} id(s) given for {len(items)} structure(s); give one --id per structure")
    named: list[tuple[str, Structure]] = []
    errors: list[InputError] = []
    seen: dict[str, str] = {}
    for i, (source_id, structure) in enumerate(items):
        mid = ids[i] if ids else material_id(source_id)
        if not mid.strip():
            errors.append(InputError(source_id, "empty id"))
        elif mid in seen:
            errors.append(InputError(source_id, f"id {mid!r} is already used by {seen[mid]} in this batch; "
                                     "rename the file or name it with --id"))  # fmt: skip
        elif taken is not None and mid in taken:
            errors.append(InputError(source_id, f"id {mid!r} is already in the index; name it with --id "
                                     "or leave it out"))  # fmt: skip
        else:
            seen[mid] = source_id
            named.append((mid, structure))
    return named, errors


def _summary_table(title: str, rows: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, str(value))
    console.print(table)


def index_summary(folder: Path, *, verify: str = "fast") -> dict[str, Any]:
    """Manifest + database summary of an index folder (for `index info` and `crystalsearch info`)."""
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
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Embed structures and write a FAISS index + SQLite metadata + manifest.json (resumable, atomic). Under
    `torchrun --nproc_per_node N -m crystalsearch index build ...` the N processes share the embedding and
    rank 0 writes the index (and the output)."""
    from crystalsearch.catalog.build import build_index
    from crystalsearch.catalog.defaults import cache_index_dir
    from crystalsearch.cli import encoders
    from crystalsearch.data.entries import Entry, entries_from_datasets, entries_from_structures
    from crystalsearch.distributed import launched_world_size
    from crystalsearch.io import ReadReport, read_structures

    default_target = not paths and dataset in (None, "all") and not from_mp
    if out is None and not default_target:
        raise fail("--out is required unless building the default index (all shipped structures)")
    t0 = time.perf_counter()
    enc = encoders.load(encoder)
    entries: list[Entry] = []
    report = ReadReport()
    if dataset is not None or (not paths and not from_mp):
        entries += entries_from_datasets(dataset or "all")
    if paths:
        taken = {e.material_id for e in entries}
        named, refused = name_structures(read_structures(paths, report=report), ids=ids or None, taken=taken)
        report.failed.extend(refused)
        entries += entries_from_structures(named)
    n_skipped_mp = 0
    if from_mp:
        from crystalsearch.catalog.filters import parse_elements
        from crystalsearch.data.materials_project import MPQuery, fetch_mp_entries

        elements = parse_elements(mp_elements, option="--mp-elements")
        download = fetch_mp_entries(MPQuery(elements=elements, chemsys=mp_chemsys, limit=mp_limit))
        entries += download.entries
        n_skipped_mp = download.skipped_disordered
    main = os.environ.get("RANK", "0") == "0"
    for err in report.failed if main else ():
        print_error(str(err))
    target = out if out is not None else cache_index_dir(enc.hash)
    shards: list[dict[str, Any]] = []
    if launched_world_size() > 1:
        from crystalsearch.catalog.shard import build_sharded

        sharded = build_sharded(entries, encoder=enc, out=target, faiss_factory=faiss_factory, resume=not no_resume,
                                chunk_size=chunk_size, progress=not json_out)  # fmt: skip
        if sharded.manifest is None:
            raise typer.Exit(report.exit_code)  # only rank 0 reports
        manifest, shards = sharded.manifest, [s.__dict__ for s in sharded.shards]
    else:
        manifest = build_index(entries, encoder=enc, out=target, faiss_factory=faiss_factory, resume=not no_resume,
                               chunk_size=chunk_size)  # fmt: skip
    seconds = time.perf_counter() - t0
    if json_out:
        print_json({"path": str(target), "seconds": round(seconds, 2), "failed": [str(e) for e in report.failed],
                    **({"ranks": shards} if shards else {}), **manifest.to_dict()}, command="index build")  # fmt: skip
    else:
        rows = {"index": target, "materials": f"{manifest.count:,}",
                "encoder": f"{manifest.encoder.name} ({manifest.encoder.hash})", "faiss": manifest.faiss_factory,
                "time": f"{seconds:.1f} s"}  # fmt: skip
        if manifest.recall_at_10 is not None:
            rows["recall@10 vs exact"] = f"{manifest.recall_at_10:.3f}"
        if n_skipped_mp:
            rows["skipped (disordered)"] = n_skipped_mp
        if report.failed:
            rows["failed inputs"] = len(report.failed)
        if shards:
            rows["ranks"] = ", ".join(f"{s['rank']}: {s['embedded']} chunks embedded, {s['reused']} reused"
                                      for s in shards)  # fmt: skip
        _summary_table("index built", rows)
    raise typer.Exit(report.exit_code)


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
    from crystalsearch.catalog.build import add_to_index
    from crystalsearch.catalog.manifest import DB_FILE
    from crystalsearch.catalog.reader import MetadataReader
    from crystalsearch.data.entries import entries_from_structures
    from crystalsearch.io import ReadReport, read_structures

    folder = _folder(index)
    report = ReadReport()
    items = list(read_structures(paths, report=report))
    reader = MetadataReader(folder / DB_FILE)
    try:
        wanted = ids or [material_id(sid) for sid, _ in items]
        taken = set(reader.row_ids(wanted))
    finally:
        reader.close()
    named, refused = name_structures(items, ids=ids or None, taken=taken)
    report.failed.extend(refused)
    result = add_to_index(entries_from_structures(named), index=folder) if named else None
    for err in report.failed:
        print_error(str(err))
    added = list(result.added) if result else []
    if json_out:
        print_json({"index": str(folder), "added": added, "refused": [e.source for e in refused],
                    "materials": result.manifest.count if result else None,
                    "failed": [str(e) for e in report.failed]}, command="index add")  # fmt: skip
    else:
        console.print(f"added {len(added)} structure(s) to {folder}", highlight=False, markup=False)
    raise typer.Exit(report.exit_code)


@one_line_errors
def info(
    index: str = typer.Option("default", "--index", help="Index folder (default: the default index)."),
    verify: bool = typer.Option(False, "--verify", help="Re-hash every file (not only those that changed)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarise an index: encoder, counts, sources, property coverage, files and checksums."""
    from crystalsearch.catalog.defaults import default_index

    folder = Path(index) if index != "default" else default_index(notify=_notify, build=False)[0]
    summary = index_summary(folder, verify="full" if verify else "fast")
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
        "checksums": "ok (full)" if verify else "ok", "created": summary["created"], "updated": summary["updated"],
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
    "crystalsearch index info", "crystalsearch index info --index my_index --verify --json"
))  # fmt: skip


def register(app: typer.Typer) -> None:
    """Attach the `index` command group to the application."""
    app.add_typer(index_app, name="index")
