"""``crystalsearch.Catalog``: similarity search over an index (:mod:`crystalsearch.catalog.catalog`) with the
"is it known?" verdicts of :mod:`crystalsearch.identity.known` (``known=True``, :meth:`Catalog.is_known`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.catalog.catalog import Catalog as SearchCatalog
from crystalsearch.catalog.catalog import Hit, QueryInput, QueryResult, _Query
from crystalsearch.catalog.scoring import Scored
from crystalsearch.data.entries import structure_from_json
from crystalsearch.errors import InputError
from crystalsearch.identity.known import KnownChecker
from crystalsearch.structure.matching import MatchCriterion, Verdict

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Catalog", "Hit", "QueryResult"]


class Catalog(SearchCatalog):
    """An opened index that also tells whether a structure is a known material of it.

    ``matcher``: what "known" means (the Materials Project's criterion by default, :class:`MatchCriterion`).
    """

    def __init__(self, folder: Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(folder, *args, **kwargs)
        self.matcher = MatchCriterion()
        self._checker: KnownChecker | None = None

    def checker(self) -> KnownChecker:
        """The "is it known?" checker of this catalog with the criterion ``self.matcher``."""
        if self._checker is None or self._checker.criterion != self.matcher:
            self._checker = KnownChecker(self, self.matcher)
        return self._checker

    def is_known(self, query: QueryInput) -> Verdict:
        """Whether a Structure, structure file or indexed id is a known material of this catalog (criterion:
        ``self.matcher``, see :mod:`crystalsearch.identity.known`); an indexed id is known as itself."""
        (item,) = self._resolve([query], None)
        if isinstance(item, QueryResult):
            raise InputError(item.query, (item.error or "unreadable").split(": ", 1)[-1])
        return self._verdict(item)

    def _judged(self, item: _Query, scored: list[Scored], *, k: int, allowed: np.ndarray | None, by: str,
                weight: float | None) -> tuple[list[Scored], Verdict]:  # fmt: skip
        """The verdict of one query and its ``k`` hits with its own material(s) first (being the same material is
        the strongest similarity there is), the others after them in score order; a match outside the
        candidates is scored alone and added when the filters allow it."""
        verdict = self._verdict(item)
        matches = [m.row for m in verdict.matches]
        if not matches:
            return scored, verdict
        have = {x.row for x in scored}
        permitted = None if allowed is None else set(allowed.tolist())
        for row in matches:
            if row not in have and row != item.row and (permitted is None or row in permitted):
                scored = [*scored, *self._ranked(item, k=1, allowed=np.array([row], dtype=np.int64), by=by,
                                                 weight=weight)]  # fmt: skip
        order = {row: i for i, row in enumerate(matches)}
        first = sorted((x for x in scored if x.row in order), key=lambda x: order[x.row])
        return [*first, *(x for x in scored if x.row not in order)][:k], verdict

    def _verdict(self, item: _Query) -> Verdict:
        structure = item.structure
        if structure is None:
            assert item.row is not None  # noqa: S101 - an invariant that narrows the type, not an input check
            structure = structure_from_json(self.db.structures([item.row])[item.row])
        return self.checker().check(structure, item.vector)
