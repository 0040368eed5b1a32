"""What the running app holds: the opened catalog (opened, or built, in the background with its progress),
the uploaded query structures, the loaded property predictors and the novelty jobs.

One lock serialises the library calls on the shared catalog (its encoder and vectors are not meant for
concurrent use); novelty jobs open their own catalog in their own thread.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.identity.novelty import NoveltyReport
    from crystalsearch.predict.predictor import Predictor

__all__ = ["AppConfig", "AppState", "NoveltyJob", "Query"]


@dataclass(frozen=True)
class AppConfig:
    """The app's options. Upload caps: files per search, files per novelty check, bytes per request."""

    index: str = "default"
    max_search_files: int = 20
    max_novelty_files: int = 2000
    max_request_bytes: int = 200 * 1024 * 1024
    max_kept_queries: int = 256
    work: Path | None = None  # where uploads are written (a fresh folder in the cache home, removed at exit)
    heads: tuple[str, ...] = ()  # heads folders of one's own (train finetune --labels): predicted beside the shipped


@dataclass(frozen=True)
class Query:
    """An uploaded or looked-up query structure, kept for the views, predictions and the map."""

    key: str
    label: str
    structure: Structure
    known_as: tuple[str, ...] = ()


@dataclass
class NoveltyJob:
    """A novelty check running in its own thread: progress, then the report (or the error)."""

    key: str
    total: int
    folder: Path
    done: int = 0
    report: NoveltyReport | None = None
    error: str | None = None
    started: float = field(default_factory=time.perf_counter)
    seconds: float | None = None
    display: Callable[[str], str] = str  # how file names are shown (the app's upload folder left out)


class AppState:
    """The catalog, kept queries, predictors and novelty jobs of one running app."""

    def __init__(self, config: AppConfig) -> None:
        import os

        from crystalsearch.paths import cache_dir

        own = _own_heads(config.heads)  # first: a bad folder stops the app in one line, leaving nothing behind
        self.config = config
        self.lock = threading.RLock()
        self.work = config.work or cache_dir() / "app" / f"uploads-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.work.mkdir(parents=True, exist_ok=True)
        self._catalog: Catalog | None = None
        self.message = "opening the index"
        self.error: str | None = None
        self.opened = threading.Event()
        self.build_done, self.build_total = 0, 0  # crystals embedded while the default index is built
        self.started = time.perf_counter()
        self.queries: OrderedDict[str, Query] = OrderedDict()
        self.predictors: dict[str, Predictor] = own
        self.own_properties = list(self.predictors)  # a shipped property given here is answered by these heads
        self.jobs: dict[str, NoveltyJob] = {}
        self.map_cache: dict[str, Any] = {}

    # -- the catalog ------------------------------------------------------------------------------------
    def open_in_background(self) -> threading.Thread:
        """Open (or build, for ``default`` on first use) the index without holding up the server."""
        thread = threading.Thread(target=self._open, name="crystalsearch-open", daemon=True)
        thread.start()
        return thread

    def _note(self, message: str) -> None:
        """A note of the index opening (e.g. that the default index is being built): shown in the page and
        the terminal; the number of materials it names is the total of the build's progress."""
        import re

        from crystalsearch.catalog.defaults import notify_stderr

        notify_stderr(message)
        self.message = " ".join(message.split()) or self.message
        found = re.search(r"\(([\d,]+) materials\)", message)
        if found:
            self.build_total = int(found[1].replace(",", ""))

    def _advance(self, n: int) -> None:
        self.build_done += n

    def _open(self) -> None:
        from crystalsearch.errors import CrystalSearchError
        from crystalsearch.identity.catalog import Catalog

        try:
            catalog = Catalog.open(self.config.index, notify=self._note, progress=self._advance)
            catalog.threads = 1  # one query at a time: more threads only contend (0.5 s, not 5 ms, per embedding)
            self.message = f"warming up the search of {len(catalog):,} materials"
            _warm_up(catalog)  # not under the lock: requests holding it wait for ``opened``; nobody else has it yet
            self._catalog = catalog
            self.message = f"{len(catalog):,} materials in {catalog.path}"
        except (CrystalSearchError, OSError) as exc:
            self.error = str(exc)
        finally:
            self.opened.set()
        if self._catalog is not None:
            self._load_predictors()

    @property
    def catalog(self) -> Catalog:
        """The opened catalog; waits while it is being opened (or built: minutes on first use)."""
        from crystalsearch.errors import CrystalSearchError

        self.opened.wait(timeout=3600)
        if self._catalog is None:
            raise CrystalSearchError(self.error or f"the index is not open yet ({self.message})")
        return self._catalog

    def status(self) -> dict[str, Any]:
        from crystalsearch.data.properties import REGISTRY
        from crystalsearch.html import element_colours

        cat = self._catalog
        return {
            "ready": cat is not None, "error": self.error, "message": self.message,
            "elapsed_s": round(time.perf_counter() - self.started, 1),
            "build": {"done": self.build_done, "total": self.build_total} if self.build_total else None,
            "index": None if cat is None else str(cat.path), "materials": None if cat is None else len(cat),
            "properties": [{"column": p.column, "label": p.label, "unit": p.unit, "head": p.head} for p in REGISTRY],
            "colours": element_colours(),
            "limits": {"search_files": self.config.max_search_files, "novelty_files": self.config.max_novelty_files,
                       "request_bytes": self.config.max_request_bytes},
        }  # fmt: skip

    # -- queries ----------------------------------------------------------------------------------------
    def keep(self, label: str, structure: Structure, known_as: tuple[str, ...] = ()) -> Query:
        query = Query(uuid.uuid4().hex[:16], label, structure, known_as)
        with self.lock:
            self.queries[query.key] = query
            while len(self.queries) > self.config.max_kept_queries:
                self.queries.popitem(last=False)
        return query

    def query(self, key: str) -> Query:
        from crystalsearch.errors import InputError

        found = self.queries.get(key)
        if found is None:
            raise InputError("query", "no such query (search again: the app keeps the latest ones)")
        return found

    def _load_predictors(self) -> None:
        """Load the shipped property heads after the index (the first prediction then takes ~2 s, not ~5)."""
        from crystalsearch.errors import CrystalSearchError
        from crystalsearch.predict.predictor import Predictor, available_properties

        for prop in available_properties():
            try:
                loaded = Predictor.load(prop)
            except (CrystalSearchError, OSError, ValueError):
                continue  # reported when the prediction is asked for
            with self.lock:
                self.predictors.setdefault(prop, loaded)

    def predictor(self, prop: str) -> Predictor:
        from crystalsearch.predict.predictor import Predictor

        with self.lock:
            if prop not in self.predictors:
                self.predictors[prop] = Predictor.load(prop)
            return self.predictors[prop]

    def close(self) -> None:
        import shutil

        if self._catalog is not None:
            self._catalog.close()
        if self.config.work is None:
            shutil.rmtree(self.work, ignore_errors=True)


def _warm_up(catalog: Catalog) -> None:
    """One search with a known verdict, so that the first search of the user runs as fast as the next ones
    (the encoder, the first forward pass and the matcher's imports take ~1.5 s once)."""
    from pymatgen.core import Lattice, Structure

    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    catalog.search([rocksalt], k=1, known=True)


def _own_heads(folders: tuple[str, ...]) -> dict[str, Predictor]:
    """The heads folders given with ``--heads``, by the property each predicts (a later folder wins)."""
    from crystalsearch.predict.predictor import Predictor

    loaded = [Predictor.load(None, folder=folder) for folder in folders]
    return {p.property: p for p in loaded}
