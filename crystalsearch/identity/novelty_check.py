"""The per-file work of a novelty batch, in worker processes: read, exact keys, representations where a key
leaves more catalog entries than StructureMatcher compares, verdicts against every reference index.

:func:`check_sources` runs in each worker (:func:`init_worker` opens the indexes once per process);
:func:`with_vectors` adds, in the main process, the representations the grouping of duplicates ranks by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.identity.candidate import Candidate
from crystalsearch.identity.known import KnownChecker, MatchCriterion, Verdict, query_key

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.io.sources import Source

__all__ = ["STATE", "check_sources", "close_worker", "digest", "init_worker", "with_vectors"]

STATE: dict[str, Any] = {}


def init_worker(indexes: tuple[str, ...], criterion: MatchCriterion) -> None:
    from crystalsearch.identity.catalog import Catalog

    # a forked worker reuses the encoder its parent loaded; the index and database are opened afresh
    catalog = Catalog.open(indexes[0], encoder=STATE.get("encoder"), verify="none", progress=False, mmap=True)
    others = [Catalog.open(i, verify="none", progress=False, mmap=True) for i in indexes[1:]]
    STATE.update(catalog=catalog, checker=KnownChecker(catalog, criterion),
                  others=[(c, KnownChecker(c, criterion)) for c in others])  # fmt: skip


def close_worker() -> None:
    STATE.pop("catalog").close()
    for catalog, _ in STATE.pop("others", []):
        catalog.close()


def _other_verdicts(structure: Structure, vector: np.ndarray | None, key: Any, first: Verdict) -> Verdict:
    """``first`` (the first index's verdict) combined with those of the other reference indexes: every match,
    closest first (an index with another encoder ranks its entries in stored order)."""
    import dataclasses

    catalog: Catalog = STATE["catalog"]
    verdicts = [first]
    for other, checker in STATE.get("others", []):
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


def check_sources(sources: Sequence[Source]) -> list[tuple[str, str, list[Candidate]]]:
    """(source id, content hash, candidates) of each file: read, keys, embeddings where needed, verdicts."""
    checker: KnownChecker = STATE["checker"]
    read = [(src, digest(src), _read(src)) for src in sources]
    keyed: dict[int, Any] = {}
    for _, _, items in read:
        for _, s in items:
            if not isinstance(s, Exception):
                keyed[id(s)] = _key(s, checker.criterion)
    good = [s for _, _, items in read for _, s in items if not isinstance(s, Exception)]
    vectors = _vectors([s for s in good if _ranked(keyed[id(s)])])
    out = []
    for src, sha256, items in read:
        found = []
        for label, s in items:
            if isinstance(s, Exception):
                found.append(Candidate(label, "error", reason=str(s)))
            else:
                found.append(_candidate(label, s, keyed[id(s)], vectors.get(id(s), _NOT_NEEDED)))
        out.append((src.source_id, sha256, found))
    return out


_NOT_NEEDED = np.zeros(0, dtype=np.float32)  # no ranking needed: the keys leave at most max_pairs entries


def _key(structure: Structure, criterion: MatchCriterion) -> Any:
    """The structure's :func:`query_key`, or the exception that stopped it (one odd structure must not stop a
    batch)."""
    try:
        return query_key(criterion.view(structure), symprec=criterion.symprec)
    except (ValueError, ArithmeticError, RuntimeError) as exc:
        return exc


def _ranked(key: Any) -> bool:
    """Whether the catalog check needs the structure's representation: some reference index holds more entries
    of its formula than StructureMatcher compares (``max_pairs``), so the most similar are chosen."""
    if key is None or isinstance(key, Exception):
        return False
    checkers = [STATE["checker"], *(c for _, c in STATE.get("others", []))]
    return any(checker.formula_count(key.formula) > checker.criterion.max_pairs for checker in checkers)


def _vectors(structures: list[Structure]) -> dict[int, np.ndarray | None]:
    """Representations (laid out like the index's rows) of the structures that need one, by ``id``."""
    if not structures:
        return {}
    found = _represent(STATE["catalog"], structures)
    return {id(s): v for s, v in zip(structures, found, strict=True)}


def _represent(catalog: Catalog, structures: list[Structure]) -> list[np.ndarray | None]:
    """Representations laid out like the index's rows, one per structure; None for a structure that cannot be
    embedded (the batch is then embedded one by one: one crystal must not spoil the others)."""
    represent = getattr(catalog, "represent", catalog.embed)
    try:
        return list(represent(structures))
    except (ValueError, RuntimeError, ArithmeticError):
        return [_one(represent, s) for s in structures]


def _candidate(label: str, s: Structure, key: Any, vec: np.ndarray | None) -> Candidate:
    """One readable structure's verdict against every reference index."""
    from crystalsearch.data.entries import structure_to_json

    checker: KnownChecker = STATE["checker"]
    if isinstance(key, Exception):
        return Candidate(label, "error", reason=f"{label}: could not be checked ({key})")
    if vec is None:
        return Candidate(label, "error", reason=f"{label}: could not be embedded")
    vector = None if vec is _NOT_NEEDED else vec
    try:
        v = checker.check(s, vector, key=key)
        v = _other_verdicts(s, vector, key, v) if STATE.get("others") else v
    except (ValueError, ArithmeticError, RuntimeError) as exc:  # one odd structure must not stop a batch
        return Candidate(label, "error", reason=f"{label}: could not be checked ({exc})")
    best = v.best
    text = structure_to_json(s.lattice.matrix, [site.specie.symbol for site in s], s.frac_coords)
    ids = tuple(m.material_id for m in v.matches)
    return Candidate(label, "known" if best else "novel", str(s.composition.reduced_formula), key.spacegroup,
                     best.material_id if best else None, best.rms_angstrom if best else None, ids, None, v.reason,
                     v.pairs, vector, text, v.loose or None)  # fmt: skip


def _one(represent: Callable[[list[Structure]], np.ndarray], structure: Structure) -> np.ndarray | None:
    try:
        return np.asarray(represent([structure]))[0]
    except (ValueError, RuntimeError, ArithmeticError):
        return None


def digest(source: Source) -> str:
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


def with_vectors(candidates: list[Candidate], index: str, criterion: MatchCriterion) -> list[Candidate]:
    """The candidates with representations wherever the grouping ranks them: in formula groups of more than
    ``max_pairs`` candidates (the most similar earlier ones are compared first); computed here for those the
    catalog check did not need."""
    import dataclasses
    from collections import Counter

    from crystalsearch.data.entries import structure_from_json
    from crystalsearch.identity.catalog import Catalog

    groups = [None if c.status == "error" or c.structure is None or c.formula is None
              else criterion.formula_key(c.formula) for c in candidates]  # fmt: skip
    sizes = Counter(groups)
    need = [i for i, (c, g) in enumerate(zip(candidates, groups, strict=True))
            if c.vector is None and g is not None and sizes[g] > criterion.max_pairs]  # fmt: skip
    if not need:
        return candidates
    out = list(candidates)
    with Catalog.open(index, verify="none", progress=False, mmap=True) as catalog:
        for start in range(0, len(need), 256):
            part = need[start : start + 256]
            vectors = _represent(catalog, [structure_from_json(str(out[i].structure)) for i in part])
            for i, vec in zip(part, vectors, strict=True):
                out[i] = dataclasses.replace(out[i], vector=vec)
    return out
