"""``Catalog``: similarity search over an index of known materials.

>>> from crystalsearch import Catalog
>>> cat = Catalog.open("default")            # or an index folder
>>> hits = cat.similar("examples/NaCl.cif", k=5, where="band_gap > 1")
>>> hits = cat.similar("mp-22862", k=5)       # an indexed id: itself left out of the hits
>>> hits[0].material_id, hits[0].similarity

Similarity is the cosine similarity of the encoder's representations (inner product of
L2-normalised vectors). Filters are evaluated in SQL and the search runs over the rows that pass, so
``k`` hits are returned whenever ``k`` rows pass (fewer only if fewer exist).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union

import numpy as np

from crystalsearch.catalog.build import check_encoder, recover
from crystalsearch.catalog.defaults import default_index, load_encoder, notify_stderr
from crystalsearch.catalog.embedding import threads
from crystalsearch.catalog.faiss_index import VectorIndex, normalise
from crystalsearch.catalog.filters import Filters
from crystalsearch.catalog.manifest import DB_FILE, JOURNAL, Manifest, Verify, locked
from crystalsearch.catalog.opening import load_consistent
from crystalsearch.catalog.reader import MetadataReader
from crystalsearch.catalog.results import Hit, Hits, QueryResult, structure_views
from crystalsearch.catalog.scoring import Scored
from crystalsearch.data.entries import structure_from_json
from crystalsearch.errors import CrystalSearchError, IndexFileError, InputError

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.io import ReadReport
    from crystalsearch.model.embed import Encoder
    from crystalsearch.structure.matching import Verdict

__all__ = ["Catalog", "Hit", "QueryResult"]

QueryInput = Union["Structure", str]
C = TypeVar("C", bound="Catalog")


@dataclass(frozen=True)
class _Query:
    label: str
    vector: np.ndarray  # [h | s] like the index's rows (h only for indexes without a structure part)
    row: int | None  # the query's own row when it is an indexed material (left out of its hits)
    structure: Structure | None
    formula: str
    prototype: str | None = None


class Catalog:
    """An opened index: FAISS vectors, SQLite metadata and (loaded on first use) the matching encoder."""

    def __init__(
        self, folder: Path, manifest: Manifest, vectors: VectorIndex, db: MetadataReader, encoder: Encoder | None = None
    ) -> None:
        self.path = folder
        self.manifest = manifest
        self.vectors = vectors
        self.db = db
        self._encoder = encoder
        self.threads: int | None = 1  # torch/FAISS threads while searching (None: library defaults)
        self._allowed: dict[Filters, np.ndarray] = {}  # rows passing each recent filter (rows never change)

    # -- opening ---------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls: type[C],
        path: str | os.PathLike[str] = "default",
        *,
        encoder: Encoder | None = None,
        verify: Verify = "fast",
        progress: bool | Callable[[int], None] = True,
        notify: Callable[[str], None] | None = None,
        mmap: bool = False,
    ) -> C:
        """Open an index folder, or ``"default"`` (shipped, cached, or built now with a progress bar).

        ``encoder`` must have the hash recorded in the manifest (else IndexFileError naming both);
        by default the index's own encoder is loaded when a structure is first embedded.
        ``progress``: a bar on stderr while the default index is built, or a callback counting embedded crystals.
        ``verify``: ``"fast"`` checks checksums of files changed since the last check, ``"full"`` always.
        ``mmap``: map the FAISS file instead of reading it — opens in ~1 ms instead of ~90 ms for the 170k
        catalog, but each query then faults in the lists it touches (~0.7 ms more): for one-shot processes.
        """
        say = notify or notify_stderr
        if str(path) == "default":
            folder, encoder = default_index(encoder=encoder, progress=progress, notify=say)
        else:
            folder = Path(path).expanduser()
        if not folder.is_dir():
            raise IndexFileError(
                f"{folder}: no such index folder (create one with `crystalsearch index build --out {folder}`)"
            )
        if (folder / JOURNAL).exists() and os.access(folder, os.W_OK):
            with locked(folder, exclusive=True):
                recover(folder)
        manifest, vectors = load_consistent(folder, verify, mmap=mmap)
        if encoder is not None:
            check_encoder(manifest, encoder, where=folder)
        return cls(folder, manifest, vectors, MetadataReader(folder / DB_FILE), encoder)

    def close(self) -> None:
        self.db.close()

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.vectors.ntotal

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r}, materials={len(self)}, encoder={self.manifest.encoder.hash})"

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            ref = self.manifest.encoder.name
            try:
                enc = load_encoder(ref)
            except (CrystalSearchError, OSError, ValueError) as exc:  # a missing or unusable checkpoint
                raise IndexFileError(f"{self.path}: cannot load the index's encoder {ref} ({exc})") from None
            check_encoder(self.manifest, enc, where=self.path)
            self._encoder = enc
        return self._encoder

    # -- lookups ---------------------------------------------------------------------------------------
    def row_of(self, material_id: str) -> int | None:
        row = self.db.row_ids([material_id]).get(material_id)
        return row if row is not None and row < len(self) else None

    def structure(self, material_id: str) -> Structure:
        """The stored structure of an indexed material."""
        row = self.row_of(material_id)
        if row is None:
            raise InputError(material_id, f"not in the index {self.path}")
        return structure_from_json(self.db.structures([row])[row])

    @property
    def chem_dim(self) -> int:
        """Size of the chemistry part ``h`` of the index's vectors (the encoder's dimension)."""
        return int(self.manifest.encoder.dim)

    @property
    def struct_dim(self) -> int:
        """Size of the structure part ``s`` (0 for indexes built before it existed)."""
        return self.vectors.dim - self.chem_dim

    def embed(self, structures: Sequence[Structure]) -> np.ndarray:
        """L2-normalised representations [n, dim] of structures with the index's encoder."""
        enc = self.encoder
        graphs = enc.graphs(structures)
        with threads(self.threads):
            return normalise(enc.embed_graphs(graphs))

    def represent(self, structures: Sequence[Structure]) -> np.ndarray:
        """Vectors ``[n, vectors.dim]`` laid out like the index's rows: ``[h | s]`` (see search.scoring)."""
        h = self.embed(structures)
        if not self.struct_dim:
            return h
        from crystalsearch.structure.fingerprint import fingerprints

        s = fingerprints([(st.lattice.matrix, st.frac_coords) for st in structures])
        return np.hstack([h, s]).astype(np.float32)

    # -- search ----------------------------------------------------------------------------------------
    def similar(
        self,
        query: QueryInput,
        *,
        k: int = 10,
        elements: str | Sequence[str] | None = None,
        exclude_elements: str | Sequence[str] | None = None,
        spacegroup: str | int | None = None,
        max_sites: int | None = None,
        where: str | None = None,
        known: bool = False,
        by: str = "both",
        weight: float | None = None,
        prototype: str | None = None,
        same_prototype: bool = False,
    ) -> Hits:
        """The ``k`` indexed materials most similar to a Structure, an indexed id, or a structure file.

        ``by``: ``"both"`` (structure type first, chemistry second), ``"structure"`` or ``"chemistry"``;
        ``weight`` overrides the structure share of the score (0..1). See :mod:`crystalsearch.catalog.scoring`.
        ``prototype``: only materials with this prototype label; ``same_prototype``: only those with the
        query's own label.
        """
        filters = Filters.make(elements=elements, exclude_elements=exclude_elements, spacegroup=spacegroup,
                               max_sites=max_sites, where=where, prototype=prototype)  # fmt: skip
        (result,) = self.search([query], k=k, filters=filters, known=known, by=by, weight=weight,
                                same_prototype=same_prototype)  # fmt: skip
        if result.error:
            raise InputError(result.query, result.error.split(": ", 1)[-1])
        shown = os.path.abspath(query) if isinstance(query, str) and _looks_like_path(query) else query
        return Hits(result.hits, query=result.query, formula=result.formula,
                    views=functools.partial(structure_views, self, shown, result.hits[:3]))  # fmt: skip

    def search(
        self,
        queries: Sequence[QueryInput],
        *,
        k: int = 10,
        filters: Filters | None = None,
        known: bool = False,
        report: ReadReport | None = None,
        by: str = "both",
        weight: float | None = None,
        same_prototype: bool = False,
    ) -> list[QueryResult]:
        """Search many queries at once (structures embedded in one batch). Strings are indexed ids,
        files, folders or globs; unreadable ones give a result with ``error`` (and go in ``report``).
        ``by``/``weight``: see :meth:`similar`; ``same_prototype``: hits share the query's prototype label."""
        if k < 1:
            raise InputError("-k", f"must be at least 1, got {k}")
        from crystalsearch.catalog.scoring import MODES

        if by not in MODES:
            raise InputError("--by", f"must be one of {', '.join(MODES)}, got {by!r}")
        with threads(self.threads):
            return self._search(queries, k=k, filters=filters or Filters(), known=known, report=report, by=by,
                                weight=weight, same_prototype=same_prototype)  # fmt: skip

    def _search(
        self,
        queries: Sequence[QueryInput],
        *,
        k: int,
        filters: Filters,
        known: bool,
        report: ReadReport | None,
        by: str,
        weight: float | None,
        same_prototype: bool = False,
    ) -> list[QueryResult]:
        resolved = self._resolve(queries, report)
        allowed = self.allowed_rows(filters) if filters.active else None
        results = []
        for item in resolved:
            if isinstance(item, QueryResult):
                results.append(item)
                continue
            rows = allowed
            if same_prototype:
                group = self.db.ids_with_prototype(item.prototype) if item.prototype else np.zeros(0, np.int64)
                rows = group if allowed is None else np.intersect1d(group, allowed)
            scored = self._ranked(item, k=k, allowed=rows, by=by, weight=weight)
            known_verdict = None
            if known:
                scored, known_verdict = self._judged(item, scored, k=k, allowed=rows, by=by, weight=weight)
            same = None if known_verdict is None else {m.row for m in known_verdict.matches}
            verdict = None if known_verdict is None else known_verdict.text()
            known_as = () if known_verdict is None else tuple(m.material_id for m in known_verdict.matches)
            results.append(QueryResult(item.label, self._hits(scored, same), item.formula, None, verdict,
                                       known_as, known_verdict))  # fmt: skip
        return results

    def ranked(
        self,
        query: str,
        *,
        k: int = 10,
        by: str = "both",
        weight: float | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[Scored]:
        """Rows and score parts of the ``k`` best materials for an indexed material ``query`` (itself left
        out), optionally among ``allowed`` rows only: the ranking of :meth:`search` without metadata."""
        row = self.row_of(query)
        if row is None:
            raise InputError(query, f"not in the index {self.path}")
        with threads(self.threads):
            allowed_rows = None if allowed is None else np.asarray(allowed, dtype=np.int64)
            return self._ranked(self._indexed_query(query, row), k=k, allowed=allowed_rows, by=by, weight=weight)

    def _ranked(
        self, item: _Query, *, k: int, allowed: np.ndarray | None, by: str, weight: float | None
    ) -> list[Scored]:
        """The ``k`` best rows for one query under ``--by``/``--weight`` (see :mod:`.scoring`)."""
        from crystalsearch.catalog.scoring import CANDIDATES, Ranking, default_weight, rank

        w = default_weight(by) if weight is None else float(weight)
        if not 0.0 <= w <= 1.0:
            raise InputError("--weight", f"must be between 0 and 1 (the structure share), got {weight}")
        ranking = Ranking(w, self.chem_dim, self.struct_dim)
        h, s = item.vector[: self.chem_dim], (item.vector[self.chem_dim :] if self.struct_dim else None)
        q = ranking.query(h, s)
        exclude = [] if item.row is None else [item.row]
        n_candidates = max(CANDIDATES, 4 * k)
        if allowed is None:
            _, candidates = self.vectors.search(q, n_candidates, exclude=exclude)
        else:
            _, candidates = self.vectors.search_subset(q, n_candidates, allowed, exclude=exclude)
        same = np.zeros(0, dtype=np.int64)
        if ranking.bonus and item.prototype:
            same = self.db.ids_with_prototype(item.prototype)
            same = same[(same < len(self)) & (same != (-1 if item.row is None else item.row))]
            if allowed is not None:
                same = same[np.isin(same, allowed)]
        return rank(self.vectors.rows, ranking, h, s, candidates, same_prototype=same, k=k)

    def allowed_rows(self, filters: Filters) -> np.ndarray:
        """Sorted rows of this index passing ``filters`` (evaluated in SQL, cached per filter)."""
        rows = self._allowed.get(filters)
        if rows is None:
            rows = self.db.ids_where(filters.condition(), below=len(self))
            if len(self._allowed) >= 16:
                self._allowed.pop(next(iter(self._allowed)))
            self._allowed[filters] = rows
        return rows

    # -- internals -------------------------------------------------------------------------------------
    def _resolve(self, queries: Sequence[QueryInput], report: ReadReport | None) -> list[_Query | QueryResult]:
        """Turn inputs into query vectors (structures embedded together), keeping input order."""
        from crystalsearch.io import ReadReport, read_structures

        report = report if report is not None else ReadReport()
        slots: list[Any] = []
        pending: list[tuple[int, str, Structure]] = []
        for q in queries:
            if not isinstance(q, str):
                pending.append((len(slots), "structure", q))
                slots.append(None)
                continue
            row = None if _looks_like_path(q) else self.row_of(q.strip())
            if row is not None:
                slots.append(self._indexed_query(q.strip(), row))
                continue
            n_failed = len(report.failed)
            for label, structure in read_structures(q, report=report):
                pending.append((len(slots), label, structure))
                slots.append(None)
            for err in report.failed[n_failed:]:
                reason = err.reason
                if "unknown Materials Project id" in reason:
                    reason = f"unknown material id (not in the index {self.path} nor in the shipped data)"
                slots.append(QueryResult(err.source, error=f"{err.source}: {reason}"))
        if pending:
            vectors = self.represent([s for _, _, s in pending])
            for (slot, label, structure), v in zip(pending, vectors):
                formula = str(structure.composition.reduced_formula)
                slots[slot] = _Query(label, v, None, structure, formula, self._query_prototype(structure, formula))
        return slots

    def _query_prototype(self, structure: Structure, formula: str) -> str:
        """The prototype label of a query, robust to noise: the label at ``symprec`` 0.1 Å when an indexed
        material of the same formula carries it, else the first label at the noise tolerances
        (:meth:`~crystalsearch.structure.matching.MatchCriterion.noise_tolerances`) that one carries (sites
        moved by a few hundredths of an Å lower the space group spglib finds, and the label with it); else the
        label at 0.1 Å."""
        from crystalsearch.structure.matching import MatchCriterion

        strict = _prototype_of(structure)
        rows = self.db.ids_with_formula(formula)
        rows = rows[rows < len(self)]
        labels = {m.prototype for m in self.db.materials(rows.tolist()).values()} if rows.size else set()
        if not labels or strict in labels:
            return strict
        for tol in MatchCriterion().noise_tolerances():
            label = _prototype_of(structure, symprec=tol)
            if label in labels:
                return label
        return strict

    def _indexed_query(self, material_id: str, row: int) -> _Query:
        m = self.db.materials([row])[row]
        return _Query(material_id, self.vectors.vector(row), row, None, m.reduced_formula, m.prototype)

    def _judged(self, item: _Query, scored: list[Scored], *, k: int, allowed: np.ndarray | None, by: str,
                weight: float | None) -> tuple[list[Scored], Verdict]:  # fmt: skip
        """The "is it known?" verdict of one resolved query and its hits in the order it implies: given by
        :class:`crystalsearch.Catalog` (:mod:`crystalsearch.identity.catalog`), which adds verdicts to this search."""
        raise CrystalSearchError("known verdicts need crystalsearch.Catalog (crystalsearch.identity.catalog)")

    def _ids(self, rows: Sequence[int]) -> list[str]:
        found = self.db.materials(rows)
        return [found[r].material_id for r in rows if r in found]

    def _hits(self, scored: Sequence[Scored], same: set[int] | None) -> tuple[Hit, ...]:
        found = self.db.materials([x.row for x in scored])
        return tuple(
            Hit.of(rank, found[x.row], x.score, same=None if same is None else x.row in same,
                   parts=(x.structure, x.chemistry))
            for rank, x in enumerate(scored, 1)
        )  # fmt: skip


def _prototype_of(structure: Structure, *, symprec: float = 0.1) -> str:
    from crystalsearch.structure.prototype import symmetry_label

    numbers = np.array(structure.atomic_numbers)
    return symmetry_label(structure.lattice.matrix, structure.frac_coords, numbers, symprec=symprec).prototype


def _looks_like_path(text: str) -> bool:
    return Path(text).expanduser().exists() or any(c in text for c in "*?[")
