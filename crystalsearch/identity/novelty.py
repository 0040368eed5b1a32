"""Novelty of a batch of candidate crystals (e.g. a generative model's output) against a catalog.

For every candidate: is it a duplicate of an earlier candidate (the *unique set*), is it a known material
of the catalog (with the matching id), or is it novel? "The same material" is the Materials Project's
criterion of :mod:`crystalsearch.identity.known` (same reduced formula, same space group at ``symprec``,
StructureMatcher match) for both questions.

Fast by construction: exact keys first (reduced formula, then space group, in SQL and dictionaries), the
embeddings to rank what remains, StructureMatcher only on the few pairs that survive. Candidates are read,
labelled and checked against the catalog in ``workers`` processes (chunks of files, a progress bar on
stderr); then duplicates among candidates are found (:mod:`crystalsearch.identity.duplicates`: by the
catalog entry they are known as, else with StructureMatcher within their reduced formula, space groups
compared with the same noise tolerances as the catalog check). Several reference indexes can be given at
once; :mod:`crystalsearch.identity.novelty_report` turns a report into the figures a paper publishes.

Resumable: with a ``journal`` (JSON lines), every finished file is recorded under its name and the SHA-256
of its content; a re-run with the same journal, index and criterion skips those files (a changed file is
checked again).

>>> report = check_novelty(["generated/"], index="default", workers=2, journal=Path("novelty.jsonl"))
>>> report.summary()
'1000 candidates: 950 unique (120 known, 830 novel), 50 duplicates of other candidates'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystalsearch.errors import InputError
from crystalsearch.identity.candidate import Candidate, load_candidate
from crystalsearch.identity.duplicates import group_duplicates
from crystalsearch.identity.journal import Journal, journal_header, read_journal, warn
from crystalsearch.identity.known import MatchCriterion
from crystalsearch.identity.novelty_check import STATE, check_sources, close_worker, digest, init_worker, with_vectors

if TYPE_CHECKING:
    from crystalsearch.io.sources import Source

__all__ = ["Candidate", "NoveltyReport", "check_novelty", "group_duplicates"]


@dataclass(frozen=True)
class NoveltyReport:
    """Every candidate in input order, and the counts of the summary line."""

    candidates: tuple[Candidate, ...]
    index: str
    criterion: MatchCriterion
    resumed: int = 0  # files whose results were taken from the journal

    def count(self, status: str, *, unique: bool = True) -> int:
        return sum(1 for c in self.candidates if c.status == status and (c.duplicate_of is None or not unique))

    @property
    def n_unique(self) -> int:
        return sum(1 for c in self.candidates if c.status != "error" and c.duplicate_of is None)

    @property
    def n_duplicates(self) -> int:
        return sum(1 for c in self.candidates if c.duplicate_of is not None)

    def summary(self) -> str:
        n, errors = len(self.candidates), self.count("error")
        text = (f"{n} candidates: {self.n_unique} unique ({self.count('known')} known, {self.count('novel')} novel), "
                f"{self.n_duplicates} duplicates of other candidates")  # fmt: skip
        return text + (f", {errors} unreadable" if errors else "")

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "candidates": len(self.candidates), "unique": self.n_unique,
                "known": self.count("known"), "novel": self.count("novel"), "duplicates": self.n_duplicates,
                "errors": self.count("error"), "criterion": self.criterion.describe()}  # fmt: skip

    def _repr_html_(self) -> str:
        """Notebook view: the summary, one row per candidate and 3D views of up to three novel ones."""
        from crystalsearch.data.entries import structure_from_json
        from crystalsearch.html import notebook, novelty_table, structure_view, view_html

        table = novelty_table(self.to_dict(), [c.to_dict() for c in self.candidates])
        novel = [c for c in self.candidates if c.status == "novel" and c.duplicate_of is None and c.structure][:3]
        views = "".join(view_html(structure_view(structure_from_json(c.structure)), width=240, height=200,
                                  title=f"novel: {c.label}") for c in novel if c.structure)  # fmt: skip
        return notebook(table + f"<div>{views}</div>", views=bool(novel))


# -- the batch ------------------------------------------------------------------------------------------
@dataclass
class _Checked:
    """Every candidate checked against the catalog, not yet grouped: the expanded inputs in order, the
    candidates of each checked source (only this shard's under ``shard``), the index folders."""

    entries: list[Source | InputError]
    results: dict[str, list[Candidate]]
    folders: list[str]
    resumed: int


def check_novelty(
    candidates: Sequence[str | os.PathLike[str]],
    *,
    index: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = "default",
    criterion: MatchCriterion = MatchCriterion(),
    workers: int = 1,
    chunk_files: int = 32,
    journal: Path | None = None,
    progress: bool | Callable[[int], None] = False,
    notify: Callable[[str], None] | None = None,
) -> NoveltyReport:
    """Unique, known and novel candidates among files, folders, globs and multi-structure files.

    ``index``: one reference index or several (e.g. the default catalog and an index built from one's own DFT
    set): a candidate is known when it matches an entry of any, and lists the matches of all, closest first.
    ``notify`` gets warning lines (a torn last line of the journal dropped); default: standard error.
    """
    checked = check_candidates(candidates, index=index, criterion=criterion, workers=workers,
                               chunk_files=chunk_files, journal=journal, progress=progress, notify=notify)  # fmt: skip
    return assemble(checked, criterion, workers=workers)


def check_candidates(
    candidates: Sequence[str | os.PathLike[str]],
    *,
    index: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = "default",
    criterion: MatchCriterion = MatchCriterion(),
    workers: int = 1,
    chunk_files: int = 32,
    journal: Path | None = None,
    progress: bool | Callable[[int], None] = False,
    notify: Callable[[str], None] | None = None,
    shard: tuple[int, int] | None = None,
) -> _Checked:
    """Read and check candidates against the catalog (the first step of :func:`check_novelty`).

    ``shard``: (rank, world size): check only the sources ``i`` (in input order) with ``i % world == rank``
    (every rank expands the same inputs); no journal then.
    """
    from crystalsearch.catalog.build import _bar
    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.io.sources import expand_sources

    if shard is not None and journal is not None:
        raise InputError(str(journal), "a journal cannot be shared by several processes (shard given)")
    folders, headers = [], []
    for one in [index] if isinstance(index, (str, os.PathLike)) else list(index):
        with Catalog.open(one, progress=bool(progress), mmap=True) as catalog:
            folders.append(str(catalog.path))
            headers.append(journal_header(catalog, criterion))
    header = headers[0] if len(headers) == 1 else {**headers[0], "index": [h["index"] for h in headers]}
    entries = list(expand_sources([os.fspath(c) for c in candidates]))
    sources = [e for e in entries if not isinstance(e, InputError)]
    if shard is not None:
        sources = sources[shard[0] :: shard[1]]
    kept = read_journal(journal, header, notify=notify or warn, load=load_candidate) if journal is not None else []
    done = {(line["source"], line["sha256"]): line for line in kept}
    log = Journal(journal, header, list(done.values()))
    results: dict[str, list[Candidate]] = {}
    pending = []
    for src in sources:
        key = (src.source_id, digest(src))
        if key in done:
            results[src.source_id] = [Candidate.from_journal(dict(c)) for c in done[key]["candidates"]]
        else:
            pending.append(src)
    chunks = [pending[i : i + chunk_files] for i in range(0, len(pending), chunk_files)]
    try:
        with _bar(progress, len(pending), "checking candidates") as advance:
            for source_id, sha256, found in _run(chunks, tuple(folders), criterion, workers):
                results[source_id] = found
                log.write({"source": source_id, "sha256": sha256, "candidates": [c.to_journal() for c in found]})
                advance(1)
    finally:
        log.close()
    return _Checked(entries, results, folders, len(sources) - len(pending))


def assemble(checked: _Checked, criterion: MatchCriterion, *, workers: int = 1) -> NoveltyReport:
    """The report: candidates in input order (an error row for each unreadable input), then duplicates among
    all of them (:func:`~crystalsearch.identity.duplicates.group_duplicates`)."""
    ordered: list[Candidate] = []
    for e in checked.entries:
        if isinstance(e, InputError):
            ordered.append(Candidate(e.source, "error", reason=str(e)))
        else:
            ordered.extend(checked.results[e.source_id])
    ordered = with_vectors(ordered, checked.folders[0], criterion)
    grouped = group_duplicates(ordered, criterion, workers=workers)
    return NoveltyReport(tuple(grouped), " + ".join(checked.folders), criterion, checked.resumed)


def _run(
    chunks: list[list[Source]], folders: tuple[str, ...], criterion: MatchCriterion, workers: int
) -> Iterator[tuple[str, str, list[Candidate]]]:
    if workers <= 1 or len(chunks) <= 1:
        init_worker(folders, criterion)
        try:
            for chunk in chunks:
                yield from check_sources(chunk)
        finally:
            close_worker()
        return
    import multiprocessing

    # fork where there is one: the workers start in a fraction of a second (this process has not started
    # torch's or FAISS's threads: it only read the index's manifest); spawn elsewhere
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "fork":
        from crystalsearch.identity.catalog import Catalog

        with Catalog.open(folders[0], verify="none", progress=False, mmap=True) as catalog:
            STATE["encoder"] = catalog.encoder
    with context.Pool(workers, initializer=init_worker, initargs=(folders, criterion)) as pool:
        for found in pool.imap_unordered(check_sources, chunks):
            yield from found
    STATE.pop("encoder", None)
