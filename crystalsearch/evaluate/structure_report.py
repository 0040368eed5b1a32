"""``results.json`` and ``report.md`` of the structure-retrieval evaluation (:mod:`.structure_retrieval`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crystalsearch.evaluate.structure_retrieval import StructureEvalReport

__all__ = ["render", "write_report"]

NAMES = {
    "structure": "crystalsearch --by structure",
    "both": "crystalsearch --by both (default)",
    "chemistry": "crystalsearch --by chemistry (cosine of CrystalCLR+CS h: the ranking before this change)",
    "mp_fingerprint": "Materials Project fingerprint (CrystalNN site fingerprints + SiteStats, Euclidean)",
    "magpie": "Magpie composition features (standardised, Euclidean)",
    "best_possible": "best possible (scan of the same space group and primitive size)",
}
COLUMNS = ("structure_type", "shares_element", "analogue", "same_element_set")
HEADER = "| ranking | structure-type P@{k} | shares an element P@{k} | analogue P@{k} | same element set P@{k} |"


def _table(rows: dict[str, dict[str, float]], k: int) -> list[str]:
    lines = [HEADER.format(k=k), "|---|---|---|---|---|"]
    for name, values in rows.items():
        cells = [f"{values[c]:.3f}" if c in values and values[c] == values[c] else "" for c in COLUMNS]
        lines.append(f"| {NAMES.get(name, name)} | " + " | ".join(cells) + " |")
    return lines


def render(report: StructureEvalReport, *, command: str) -> str:
    """The Markdown report."""
    c = report.config
    lines = [
        "# Structure retrieval: does similarity find the query's structure type?",
        "",
        f"Command: `{command}`",
        "",
        "Truth: pymatgen `StructureMatcher(comparator=FrameworkComparator(), primitive_cell=True, scale=True, "
        "attempt_supercell=False)` (species ignored, default tolerances); verdicts cached on disk. "
        f"{c.n_queries} random query materials (seed {c.seed}, at most {c.max_sites} sites), top {c.k} hits "
        f"with the query left out. Index: {report.index_size:,} materials, encoder {report.encoder}. "
        f"{report.verdicts_computed:,} matcher verdicts computed in this run; {report.seconds:.0f} s in all.",
        "",
        f"## Whole catalog ({report.index_size:,} materials)",
        "",
        *_table(report.full, c.k),
        "",
        f"## Seeded subset of {report.subset_size:,} materials: every ranking on the same candidates",
        "",
        "The MP fingerprint takes ~0.3 s per structure, too slow for the whole catalog; on the subset each",
        "query has fewer same-type partners, so every number (and the best possible) is lower than on the",
        "whole catalog.",
        "",
        *_table(report.subset, c.k),
        "",
        f"## Polytypes ({report.polytype_queries} queries whose formula exists in two or more space groups)",
        "",
        "Share of queries for which a material of the query's own structure type (any formula) ranks above",
        "every polytype (same formula, other structure type), within the top "
        f"{c.polytype_depth} (queries whose same-formula materials all match it are not counted):",
        "",
        "| ranking | own type first |",
        "|---|---|",
        *[f"| {NAMES.get(m, m)} | {v:.3f} |" for m, v in report.polytypes.items()],
        "",
        "Textbook polytypes: every material of a formula that exists both as zincblende and wurtzite, diamond",
        f"and lonsdaleite, or rutile and anatase ({len(report.classic_queries)} queries; same rule):",
        "",
        "| ranking | own type first |",
        "|---|---|",
        *[f"| {NAMES.get(m, m)} | {v:.3f} |" for m, v in report.classic_polytypes.items()],
        "",
        f"## Textbook structures built from scratch (`--by both`, top {c.k})",
        "",
        "| structure | hits of its own structure type | top 3 |",
        "|---|---|---|",
        *[
            f"| {t['structure']} | {t['same_type_in_top_k']} / {t['k']} | {', '.join(t['top3'])} |"
            for t in report.textbook
        ],
        "",
    ]
    return "\n".join(lines)


def write_report(report: StructureEvalReport, *, out: Path, command: str) -> str:
    """Write ``results.json`` and ``report.md`` into ``out`` (atomically); returns the Markdown."""
    from crystalsearch.atomic import atomic_write_bytes

    text = render(report, command=command)
    out.mkdir(parents=True, exist_ok=True)
    data = {"command": command, **report.to_dict()}
    atomic_write_bytes(out / "results.json", (json.dumps(data, indent=2, default=str) + "\n").encode())
    atomic_write_bytes(out / "report.md", text.encode())
    return text
