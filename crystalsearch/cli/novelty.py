"""`crystalsearch novelty`: which candidate crystals are duplicates of each other, known, or novel."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from crystalsearch.cli.common import add_command, console, examples, fail, one_line_errors, print_error, print_json

if TYPE_CHECKING:
    from crystalsearch.identity.novelty import NoveltyReport

CSV_FIELDS = ("candidate", "status", "unique", "duplicate_of", "material_id", "rms_angstrom", "formula",
              "spacegroup", "matches", "reason")  # fmt: skip
EXAMPLES = examples(
    "crystalsearch novelty generated/                        # a folder of CIFs (searched recursively)",
    "crystalsearch novelty 'run1/*.cif' batch.json --csv novelty.csv",
    "crystalsearch novelty generated/ --workers 2 --journal novelty.jsonl   # resumable",
    "crystalsearch novelty x.cif --stol 0.5 --symprec 0.01 --json",
    "crystalsearch novelty generated/ --report report.json   # + report.png: valid/unique/novel rates",
    "crystalsearch novelty generated/ --disordered            # similar elements interchangeable",
)


def _rows(report: NoveltyReport) -> list[dict[str, Any]]:
    return [
        {"candidate": c.label, "status": c.status, "unique": c.duplicate_of is None and c.status != "error",
         "duplicate_of": c.duplicate_of or "", "material_id": c.material_id or "",
         "rms_angstrom": "" if c.rms_angstrom is None else f"{c.rms_angstrom:.4f}", "formula": c.formula or "",
         "spacegroup": "" if c.spacegroup is None else c.spacegroup, "matches": " ".join(c.matches), "reason": c.reason}
        for c in report.candidates
    ]  # fmt: skip


def write_csv(report: NoveltyReport, path: str) -> None:
    fh: Any = sys.stdout if path == "-" else open(Path(path), "w", newline="")  # noqa: SIM115
    try:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(_rows(report))
    finally:
        if fh is not sys.stdout:
            fh.close()


def write_report(report: NoveltyReport, path: Path) -> None:
    """The JSON report (:func:`crystalsearch.identity.novelty_report.summarise`) and its PNG chart."""
    from crystalsearch.atomic import atomic_write_json
    from crystalsearch.identity.novelty_report import summarise, write_chart

    figures = summarise(report)
    atomic_write_json(path, figures)
    write_chart(figures, path.with_suffix(".png"))


def render(report: NoveltyReport) -> None:
    """A table of every candidate (tab-separated full rows when piped), then the summary line."""
    from crystalsearch.cli.render import Column, print_table, write_tsv

    rows = [r for r in _rows(report) if r["status"] != "error"]
    if not console.is_terminal:
        write_tsv(CSV_FIELDS, [[r[k] for k in CSV_FIELDS] for r in rows])
    elif rows:
        status = [r["status"] + (" (duplicate)" if r["duplicate_of"] else "") for r in rows]
        columns = [
            Column("candidate", [r["candidate"] for r in rows]),
            Column("status", status),
            Column("material id", [r["material_id"] for r in rows]),
            Column("RMS", [r["rms_angstrom"] for r in rows], "right", optional=True, drop_order=3, unit="Å"),
            Column("formula", [r["formula"] for r in rows], optional=True, drop_order=2),
            Column("space group", [str(r["spacegroup"]) for r in rows], "right", optional=True, drop_order=1),
            Column("reason", [r["reason"] for r in rows], optional=True, drop_order=9),
        ]
        print_table(console, columns)
    resumed = f" ({report.resumed} files taken from the journal)" if report.resumed else ""
    if console.is_terminal:
        console.print(report.summary() + resumed, highlight=False, soft_wrap=True)
    else:  # the summary apart from the rows, which stay machine-readable
        sys.stderr.write(report.summary() + resumed + "\n")


@one_line_errors
def novelty(
    candidates: list[str] = typer.Argument(
        ...,
        metavar="CANDIDATES...",
        help="Structure files (CIF, POSCAR, JSON; multi-structure CIF and JSON "
        "files count each structure), folders (searched recursively) or globs.",
    ),
    index: list[str] = typer.Option(
        ["default"],
        "--index",
        help="Reference index folder (default: the shipped/cached index); repeat it to check against several "
        "at once (e.g. --index default --index my_dft_index): known in any is known.",
    ),
    workers: int = typer.Option(
        0, "--workers", "-j", min=0, help="Processes reading and checking candidates (0: as many as CPUs, up to 4)."
    ),
    journal: Path | None = typer.Option(
        None,
        "--journal",
        help="JSON-lines journal of finished files: a re-run with the same journal skips "
        "files already checked (same name and content, same index and tolerances).",
    ),
    symprec: float = typer.Option(0.1, "--symprec", min=1e-5, help="spglib tolerance (Å) of the space-group check."),
    noise_symprec: float = typer.Option(
        0.2,
        "--noise-symprec",
        min=0.0,
        help="When nothing matches in the space group found at --symprec, also "
        "try the candidate's space group at this looser tolerance (sites moved by noise; 0: off, MP to the letter).",
    ),
    ltol: float = typer.Option(0.2, "--ltol", min=0.0, help="StructureMatcher fractional length tolerance."),
    stol: float = typer.Option(0.3, "--stol", min=0.0, help="StructureMatcher site tolerance ((V/n)^1/3 units)."),
    angle_tol: float = typer.Option(5.0, "--angle-tol", min=0.0, help="StructureMatcher angle tolerance (°)."),
    max_pairs: int = typer.Option(
        16,
        "--max-pairs",
        min=1,
        help="At most this many same-formula, same-space-group materials compared "
        "per candidate (the most similar first).",
    ),
    disordered: bool = typer.Option(
        False,
        "--disordered",
        help="Elements of similar atomic radius (within 30%) and electronegativity (within 1.0) are "
        "interchangeable (MatterGen's disordered matching; classes in docs/novelty.md).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (schema: docs/cli.md)."),
    csv_path: str | None = typer.Option(
        None, "--csv", metavar="FILE", help="Also write the rows as CSV ('-': stdout)."
    ),
    report_path: Path | None = typer.Option(
        None,
        "--report",
        metavar="FILE",
        help="Also write the figures a paper reports (counts and rates of valid, unique, novel, unique and "
        "novel; by space group and element; the criterion) as JSON, and a bar chart next to it (.png).",
    ),
) -> None:
    """Tell which CANDIDATES are duplicates of each other, which are known materials of the index (with the
    matching id) and which are novel.

    "The same material" is the Materials Project's criterion: same reduced formula, same space group
    (spglib, --symprec), and a pymatgen StructureMatcher match (--ltol, --stol, --angle-tol; primitive
    cells, volumes scaled). Defaults are the Materials Project's. Exact keys (formula, space group) are
    tried first, the embeddings rank what remains, and StructureMatcher runs only on those few pairs.
    """
    import os

    from crystalsearch.cli.schema import response
    from crystalsearch.identity.known import MatchCriterion
    from crystalsearch.identity.novelty import check_novelty

    world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's processes (crystalsearch.distributed)
    workers = workers or max(1, min(4, os.cpu_count() or 1) // world)
    criterion = MatchCriterion(symprec=symprec, ltol=ltol, stol=stol, angle_tol=angle_tol, max_pairs=max_pairs,
                               noise_symprec=noise_symprec or None, disordered=disordered)  # fmt: skip
    show_progress = sys.stderr.isatty() and not json_out
    reference = index if len(index) > 1 else index[0]
    if world > 1:  # torchrun: every rank checks its share, rank 0 reports
        from crystalsearch.identity.novelty_shard import check_novelty_sharded

        if journal is not None:
            raise fail("--journal is for one process; run without torchrun to use it")
        sharded = check_novelty_sharded(candidates, index=reference, criterion=criterion, workers=workers,
                                        progress=show_progress)  # fmt: skip
        if sharded is None:
            raise typer.Exit(0)
        report = sharded
    else:
        report = check_novelty(candidates, index=reference, criterion=criterion, workers=workers, journal=journal,
                               progress=show_progress)  # fmt: skip
    if csv_path:
        write_csv(report, csv_path)
    if report_path is not None:
        write_report(report, report_path)
    if json_out:
        units = {"rms_angstrom": "Å (RMS displacement at the catalog material's volume per atom)",
                 "rms": "pymatgen's RMS displacement / (V/n)^1/3"}  # fmt: skip
        results = []
        for c in report.candidates:
            entry = c.to_dict()
            entry["query"] = entry.pop("label")
            entry["error"] = entry["reason"] if c.status == "error" else None
            results.append(entry)
        print_json(response("novelty", results, units=units, index=report.index, **report.to_dict()))
    elif csv_path != "-":
        render(report)
    errors = [c for c in report.candidates if c.status == "error"]
    if not json_out:
        for c in errors:
            print_error(c.reason)
    raise typer.Exit(2 if errors else 0)


def register(app: typer.Typer) -> None:
    """Attach the `novelty` command to the application."""
    add_command(app, novelty, "novelty", epilog=EXAMPLES)
