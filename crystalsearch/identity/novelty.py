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

import base64
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.errors import InputError
from crystalsearch.identity.duplicates import group_duplicates
from crystalsearch.identity.journal import Journal, journal_header, read_journal, warn
from crystalsearch.identity.known import KnownChecker, MatchCriterion, Verdict, query_key

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.io.sources import Source

__all__ = ["Candidate", "NoveltyReport", "check_novelty", "group_duplicates"]


@dataclass(frozen=True)
class Candidate:
    """The outcome for one candidate. ``status``: ``known``, ``novel`` or ``error`` (unreadable input).

    ``duplicate_of`` names the earlier candidate this one is the same material as (then ``status`` is that
    candidate's); ``material_id``/``rms_angstrom``: the best catalog match; ``matches``: every matching
    catalog id (more than one only where the catalog holds duplicates).
    """

    label: str
    status: str
    formula: str | None = None
    spacegroup: int | None = None
    material_id: str | None = None
    rms_angstrom: float | None = None
    matches: tuple[str, ...] = ()
    duplicate_of: str | None = None
    reason: str = ""
    pairs: int = 0  # StructureMatcher comparisons against the catalog
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)
    structure: str | None = field(default=None, repr=False, compare=False)  # compact JSON, for the grouping
    loose: tuple[int, ...] | None = None  # space groups at the noise tolerances where computed (for the grouping)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("vector", "structure", "loose")}
        out["matches"] = list(self.matches)
        out["unique"] = self.duplicate_of is None and self.status != "error"
        if self.rms_angstrom is not None:
            out["rms_angstrom"] = round(self.rms_angstrom, 5)
        return out

    def to_journal(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("vector", "duplicate_of")}
        out["matches"] = list(self.matches)
        if self.vector is not None:
            out["vector"] = base64.b64encode(np.asarray(self.vector, dtype=np.float32).tobytes()).decode("ascii")
        return out

    @classmethod
    def from_journal(cls, data: dict[str, Any]) -> Candidate:
        """A candidate from its journal form; ValueError or TypeError when a field is missing or of another type."""
        vector = data.pop("vector", None)
        matches = data.get("matches", [])
        if not isinstance(matches, list) or not all(isinstance(m, str) for m in matches):
            raise TypeError("matches must be a list of strings")
        data["matches"] = tuple(data.get("matches", ()))
        for name, kinds in _JOURNAL_TYPES.items():
            if name in data and not isinstance(data[name], kinds):
                raise TypeError(f"{name} is {type(data[name]).__name__}")
        if data.get("status") not in ("known", "novel", "error"):
            raise ValueError(f"status {data.get('status')!r}")
        if vector is not None and not isinstance(vector, str):
            raise TypeError("vector must be base64 text")
        if data.get("loose") is not None and not isinstance(data["loose"], list):
            raise TypeError("loose must be a list")
        data["loose"] = None if data.get("loose") is None else tuple(data["loose"])
        vec = None if vector is None else np.frombuffer(base64.b64decode(vector, validate=True), dtype=np.float32)
        return cls(**data, vector=vec)


_OPTIONAL_TEXT = (str, type(None))
_JOURNAL_TYPES: dict[str, tuple[type, ...]] = {
    "label": (str,), "status": (str,), "formula": _OPTIONAL_TEXT, "spacegroup": (int, type(None)),
    "material_id": _OPTIONAL_TEXT, "rms_angstrom": (int, float, type(None)), "reason": (str,), "pairs": (int,),
    "structure": _OPTIONAL_TEXT,
}  # fmt: skip


def _load_candidate(data: dict[str, Any]) -> None:
    Candidate.from_journal(dict(data))


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


# -- per-file work (in worker processes) ------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _init_worker(indexes: tuple[str, ...], criterion: MatchCriterion) -> None:
    from crystalsearch.identity.catalog import Catalog

    # a forked worker reuses the encoder its parent loaded; the index and database are opened afresh
    catalog = Catalog.open(indexes[0], encoder=_STATE.get("encoder"), verify="none", progress=False)
    others = [Catalog.open(i, verify="none", progress=False) for i in indexes[1:]]
    _STATE.update(catalog=catalog, checker=KnownChecker(catalog, criterion),
                  others=[(c, KnownChecker(c, criterion)) for c in others])  # fmt: skip


def _close_worker() -> None:
    _STATE.pop("catalog").close()
    for catalog, _ in _STATE.pop("others", []):
        catalog.close()


def _other_verdicts(structure: Structure, vector: np.ndarray, key: Any, first: Verdict) -> Verdict:
    """``first`` (the first index's verdict) combined with those of the other reference indexes: every match,
    closest first (an index with another encoder ranks its entries in stored order)."""
    import dataclasses

    catalog: Catalog = _STATE["catalog"]
    verdicts = [first]
    for other, checker in _STATE.get("others", []):
        same = other.manifest.encoder.hash == catalog.manifest.encoder.hash
        verdicts.append(checker.check(structure, vector if same else None, key=key))
    known = sorted((v for v in verdicts if v.known), key=lambda v: v.matches[0].rms)
    if not known:
        return dataclasses.replace(
            first, reason="; ".join(v.reason for v in verdicts), pairs=sum(v.pairs for v in verdicts)
        )
    matches = tuple(sorted((m for v in known for m in v.matches), key=lambda m: m.rms))
    return dataclasses.replace(known[0], matches=matches, pairs=sum(v.pairs for v in verdicts))


def _read(source: Source) -> list[tuple[str, Structure | Exception]]:
    from crystalsearch.io import read_items

    if source.path is None:
        return list(read_items(source.mp_id or source.source_id))
    path = str(source.path)
    items: list[tuple[str, Structure | Exception]] = []
    for sid, item in read_items(path):
        items.append((source.source_id + sid[len(path) :] if sid.startswith(path) else sid, item))
    return items


def _check_sources(sources: Sequence[Source]) -> list[tuple[str, str, list[Candidate]]]:
    """(source id, content hash, candidates) of each file: read, keys, embeddings, verdicts."""
    from crystalsearch.data.entries import structure_to_json

    catalog: Catalog = _STATE["catalog"]
    checker: KnownChecker = _STATE["checker"]
    read = [(src, _digest(src), _read(src)) for src in sources]
    good = [s for _, _, items in read for _, s in items if not isinstance(s, Exception)]
    represent = getattr(catalog, "represent", catalog.embed)  # vectors laid out like the index's rows
    try:
        vectors = iter(list(represent(good)) if good else [])
    except (ValueError, RuntimeError, ArithmeticError):  # one crystal spoils the batch: embed them one by one
        vectors = iter([_one(represent, s) for s in good])
    out = []
    for src, digest, items in read:
        found = []
        for label, s in items:
            if isinstance(s, Exception):
                found.append(Candidate(label, "error", reason=str(s)))
                continue
            vec = next(vectors)
            if vec is None:
                found.append(Candidate(label, "error", reason=f"{label}: could not be embedded"))
                continue
            try:
                key = query_key(checker.criterion.view(s), symprec=checker.criterion.symprec)
                v = checker.check(s, vec, key=key)
                v = _other_verdicts(s, vec, key, v) if _STATE.get("others") else v
            except (ValueError, ArithmeticError, RuntimeError) as exc:  # one odd structure must not stop a batch
                found.append(Candidate(label, "error", reason=f"{label}: could not be checked ({exc})"))
                continue
            best = v.best
            text = structure_to_json(s.lattice.matrix, [site.specie.symbol for site in s], s.frac_coords)
            ids = tuple(m.material_id for m in v.matches)
            found.append(
                Candidate(label, "known" if best else "novel", str(s.composition.reduced_formula), key.spacegroup,
                          best.material_id if best else None, best.rms_angstrom if best else None, ids, None,
                          v.reason, v.pairs, vec, text)
            )  # fmt: skip
        out.append((src.source_id, digest, found))
    return out


def _one(represent: Callable[[list[Structure]], np.ndarray], structure: Structure) -> np.ndarray | None:
    try:
        return np.asarray(represent([structure]))[0]
    except (ValueError, RuntimeError, ArithmeticError):
        return None


def _digest(source: Source) -> str:
    if source.path is None:
        return source.mp_id or source.source_id
    h = hashlib.sha256()
    try:
        with open(source.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return "unreadable"
    return h.hexdigest()


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
        with Catalog.open(one, progress=bool(progress)) as catalog:
            folders.append(str(catalog.path))
            headers.append(journal_header(catalog, criterion))
    header = headers[0] if len(headers) == 1 else {**headers[0], "index": [h["index"] for h in headers]}
    entries = list(expand_sources([os.fspath(c) for c in candidates]))
    sources = [e for e in entries if not isinstance(e, InputError)]
    if shard is not None:
        sources = sources[shard[0] :: shard[1]]
    kept = read_journal(journal, header, notify=notify or warn, load=_load_candidate) if journal is not None else []
    done = {(line["source"], line["sha256"]): line for line in kept}
    log = Journal(journal, header, list(done.values()))
    results: dict[str, list[Candidate]] = {}
    pending = []
    for src in sources:
        key = (src.source_id, _digest(src))
        if key in done:
            results[src.source_id] = [Candidate.from_journal(dict(c)) for c in done[key]["candidates"]]
        else:
            pending.append(src)
    chunks = [pending[i : i + chunk_files] for i in range(0, len(pending), chunk_files)]
    try:
        with _bar(progress, len(pending), "checking candidates") as advance:
            for source_id, digest, found in _run(chunks, tuple(folders), criterion, workers):
                results[source_id] = found
                log.write({"source": source_id, "sha256": digest, "candidates": [c.to_journal() for c in found]})
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
    grouped = group_duplicates(ordered, criterion, workers=workers)
    return NoveltyReport(tuple(grouped), " + ".join(checked.folders), criterion, checked.resumed)


def _run(
    chunks: list[list[Source]], folders: tuple[str, ...], criterion: MatchCriterion, workers: int
) -> Iterator[tuple[str, str, list[Candidate]]]:
    if workers <= 1 or len(chunks) <= 1:
        _init_worker(folders, criterion)
        try:
            for chunk in chunks:
                yield from _check_sources(chunk)
        finally:
            _close_worker()
        return
    import multiprocessing

    # fork where there is one: the workers start in a fraction of a second (this process has not started
    # torch's or FAISS's threads: it only read the index's manifest); spawn elsewhere
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "fork":
        from crystalsearch.identity.catalog import Catalog

        with Catalog.open(folders[0], verify="none", progress=False) as catalog:
            _STATE["encoder"] = catalog.encoder
    with context.Pool(workers, initializer=_init_worker, initargs=(folders, criterion)) as pool:
        for found in pool.imap_unordered(_check_sources, chunks):
            yield from found
    _STATE.pop("encoder", None)
