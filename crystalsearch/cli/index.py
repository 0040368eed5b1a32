"""`crystalsearch index build|add|info`: write, extend and inspect similarity-search indexes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from crystalsearch.cli.common import console, err_console, fail, one_line_errors, print_json


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
    from crystalsearch.search.db import MetadataDB
    from crystalsearch.search.manifest import DB_FILE, read_manifest, verify_files

    manifest = read_manifest(folder)
    verify_files(folder, manifest, verify="full" if verify == "full" else "fast")  # type: ignore[arg-type]
    db = MetadataDB(folder / DB_FILE)
    try:
        summary = db.summary()
    finally:
        db.close()
    return {"path": str(folder), "checksums": "ok", **manifest.to_dict(), "database": summary}


def register(app: typer.Typer) -> None:
    """Attach the `index` command group to the application."""
    index_app = typer.Typer(help="Build, extend and inspect similarity-search indexes.", no_args_is_help=True)
    app.add_typer(index_app, name="index")

    @index_app.command("build")
    @one_line_errors
    def build(
        paths: list[str] = typer.Argument(
            None, metavar="[PATHS]...", help="Structure files, folders or globs to index."
        ),
        dataset: str | None = typer.Option(
            None,
            "--dataset",
            help="Shipped data: all, mp_structures, mp_elasticity, thermal_conductivity, "
            "melting_temperature (default: all, unless PATHS are given).",
        ),
        encoder: str = typer.Option("default", "--encoder", help="default, random[:SEED], or a checkpoint folder."),
        out: Path | None = typer.Option(None, "--out", help="Index folder (default: the default index in the cache)."),
        faiss_factory: str = typer.Option(
            "Flat", "--faiss-factory", help="FAISS factory: Flat (exact), HNSW32, IVF1024,Flat..."
        ),
        from_mp: bool = typer.Option(
            False, "--from-mp", help="Download from the Materials Project (needs mp-api, MP_API_KEY)."
        ),
        mp_elements: str | None = typer.Option(
            None, "--mp-elements", help="With --from-mp: materials containing these elements."
        ),
        mp_chemsys: str | None = typer.Option(
            None, "--mp-chemsys", help="With --from-mp: a chemical system, e.g. Li-Fe-O."
        ),
        mp_limit: int | None = typer.Option(
            None, "--mp-limit", min=1, help="With --from-mp: at most this many materials."
        ),
        no_resume: bool = typer.Option(
            False, "--no-resume", help="Start over instead of resuming an interrupted build."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
    ) -> None:
        """Embed structures and write a FAISS index + SQLite metadata + manifest.json (resumable, atomic)."""
        from crystalsearch.io import ReadReport, read_structures
        from crystalsearch.search.build import build_index
        from crystalsearch.search.defaults import cache_index_dir, encoder_from_spec
        from crystalsearch.search.entries import Entry, entries_from_datasets, entries_from_structures

        default_target = not paths and dataset in (None, "all") and not from_mp
        if out is None and not default_target:
            raise fail("--out is required unless building the default index (all shipped structures)")
        t0 = time.perf_counter()
        enc = encoder_from_spec(encoder, notify=lambda m: err_console.print(m, highlight=False))
        entries: list[Entry] = []
        report = ReadReport()
        if dataset is not None or (not paths and not from_mp):
            entries += entries_from_datasets(dataset or "all")
        if paths:
            entries += entries_from_structures(read_structures(paths, report=report))
        n_skipped_mp = 0
        if from_mp:
            from crystalsearch.search.filters import parse_elements
            from crystalsearch.search.materials_project import MPQuery, fetch_mp_entries

            elements = parse_elements(mp_elements, option="--mp-elements")
            download = fetch_mp_entries(MPQuery(elements=elements, chemsys=mp_chemsys, limit=mp_limit))
            entries += download.entries
            n_skipped_mp = download.skipped_disordered
        for err in report.failed:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        target = out if out is not None else cache_index_dir(enc.hash)
        manifest = build_index(entries, encoder=enc, out=target, faiss_factory=faiss_factory, resume=not no_resume)
        seconds = time.perf_counter() - t0
        if json_out:
            print_json({"path": str(target), "seconds": round(seconds, 2), "failed": [str(e) for e in report.failed],
                        **manifest.to_dict()})  # fmt: skip
        else:
            rows = {
                "index": target,
                "materials": f"{manifest.count:,}",
                "encoder": f"{manifest.encoder.name} ({manifest.encoder.hash})",
                "faiss": manifest.faiss_factory,
                "time": f"{seconds:.1f} s",
            }
            if manifest.recall_at_10 is not None:
                rows["recall@10 vs exact"] = f"{manifest.recall_at_10:.3f}"
            if n_skipped_mp:
                rows["skipped (disordered)"] = n_skipped_mp
            if report.failed:
                rows["failed inputs"] = len(report.failed)
            _summary_table("index built", rows)
        raise typer.Exit(report.exit_code)

    @index_app.command("add")
    @one_line_errors
    def add(
        paths: list[str] = typer.Argument(..., metavar="PATHS...", help="Structure files, folders or globs."),
        index: str = typer.Option("default", "--index", help="Index folder (default: the default index in the cache)."),
        json_out: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    ) -> None:
        """Add your own structures to an index (incremental; ids are the file names; existing ids skipped)."""
        from crystalsearch.io import ReadReport, read_structures
        from crystalsearch.search.build import add_to_index
        from crystalsearch.search.defaults import default_index, shipped_index_dir
        from crystalsearch.search.entries import entries_from_structures

        if index == "default":
            folder, _ = default_index(notify=lambda m: err_console.print(m, highlight=False))
            if folder == shipped_index_dir():
                raise fail("the shipped default index is read-only; build your own with "
                           "`crystalsearch index build --out DIR` and add to it with --index DIR")  # fmt: skip
        else:
            folder = Path(index)
        report = ReadReport()
        entries = entries_from_structures(read_structures(paths, report=report))
        result = None
        if entries:
            result = add_to_index(entries, index=folder)
        for err in report.failed:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        added = list(result.added) if result else []
        skipped = list(result.skipped) if result else []
        if json_out:
            count = result.manifest.count if result else None
            print_json({"index": str(folder), "added": added, "already_indexed": skipped, "materials": count,
                        "failed": [str(e) for e in report.failed]})  # fmt: skip
        else:
            console.print(f"added {len(added)} structure(s) to {folder}" + (f"; {len(skipped)} already indexed: "
                          f"{', '.join(skipped)}" if skipped else ""), highlight=False)  # fmt: skip
        raise typer.Exit(report.exit_code)

    @index_app.command("info")
    @one_line_errors
    def info(
        index: str = typer.Option("default", "--index", help="Index folder (default: the default index)."),
        verify: bool = typer.Option(False, "--verify", help="Re-hash every file (not only those that changed)."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Summarise an index: encoder, counts, sources, property coverage, files and checksums."""
        from crystalsearch.search.defaults import default_index

        if index == "default":
            folder, _ = default_index(notify=lambda m: err_console.print(m, highlight=False), build=False)
        else:
            folder = Path(index)
        summary = index_summary(folder, verify="full" if verify else "fast")
        if json_out:
            print_json(summary)
            return
        db = summary["database"]
        enc = summary["encoder"]
        rows = {
            "index": folder,
            "materials": f"{summary['count']:,}",
            "encoder": f"{enc['name']} (hash {enc['hash']}, dim {enc['dim']})",
            "search": f"{summary['faiss_factory']}, {summary['metric']} of L2-normalised embeddings",
            "sources": ", ".join(f"{k}: {v:,}" for k, v in summary["sources"].items()),
            "properties": ", ".join(
                f"{k}: {v:,} ({db['units'].get(k, '')})" for k, v in db["property_coverage"].items()
            ),
            "crystal systems": ", ".join(f"{k}: {v:,}" for k, v in sorted(db["crystal_systems"].items())),
            "files": ", ".join(f"{k} ({v['bytes'] / 2**20:.1f} MiB)" for k, v in summary["files"].items()),
            "checksums": "ok (full)" if verify else "ok",
            "created": summary["created"],
            "updated": summary["updated"],
            "versions": ", ".join(f"{k} {v}" for k, v in summary["versions"].items()),
        }
        if summary.get("recall_at_10") is not None:
            rows["recall@10 vs exact"] = f"{summary['recall_at_10']:.3f}"
        _summary_table("index", rows)
