"""Notebook views: examples/notebook.ipynb run cell by cell on a small real index, and the ``_repr_html_`` of
its results (hits, predictions, novelty report) parsed, then drawn offline in a headless Chromium."""

from __future__ import annotations

import ast
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "notebook.ipynb"


class Parsed(HTMLParser):
    """Tags with their classes, the text of table cells, and scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.classes: list[str] = []
        self.cells: list[str] = []
        self.scripts = 0
        self._in_td = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.classes += (dict(attrs).get("class") or "").split()
        self._in_td = self._in_td or tag == "td"
        self.scripts += tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_td = self._in_td and tag != "td"

    def handle_data(self, data: str) -> None:
        if self._in_td and data.strip():
            self.cells.append(data.strip())


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The value of every code cell's last expression, with INDEX pointing at a small index."""
    import sys

    from crystalsearch.catalog.build import build_index
    from crystalsearch.model.embed import Encoder

    sys.path.insert(0, str(Path(__file__).parent))
    from test_search import small_entries

    os.environ.setdefault("CRYSTALSEARCH_CACHE", str(tmp_path_factory.mktemp("nb-cache")))
    index = tmp_path_factory.mktemp("nb-index") / "small"
    build_index(small_entries(60), encoder=Encoder.random(seed=0), out=index, progress=False, chunk_size=64)
    folder = tmp_path_factory.mktemp("nb-examples")
    for cif in (REPO / "examples").glob("*.cif"):
        shutil.copy(cif, folder)
    cwd = Path.cwd()
    os.chdir(folder)
    namespace: dict[str, Any] = {}
    results: dict[str, Any] = {}
    try:
        for cell in json.loads(NOTEBOOK.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            tree = ast.parse("".join(cell["source"]))
            last = tree.body.pop() if isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, "<cell>", "exec"), namespace)  # noqa: S102 - runs the shipped notebook's own cells
            namespace["INDEX"] = str(index)
            if last is not None:
                name = ast.unparse(last)
                results[name] = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)  # noqa: S307
    finally:
        os.chdir(cwd)
    return results


def test_notebook_hits_render_a_table_and_3d_views(outputs: dict[str, Any]) -> None:
    hits = outputs["hits"]
    parsed = Parsed()
    parsed.feed(hits._repr_html_())
    assert parsed.classes.count("cs-view") == 4  # the query and the 3 best hits
    assert "mp-22862" in parsed.cells and "KCl" in parsed.cells
    assert parsed.scripts == 3  # 3Dmol.js, the view code, the call drawing these views: all inline


def test_notebook_predictions_and_novelty_render(outputs: dict[str, Any]) -> None:
    pred = Parsed()
    pred.feed(outputs["predictions"]._repr_html_())
    assert "cs-predict-table" in pred.classes and "cs-view" in pred.classes
    assert any(c.endswith("(90%)") for c in pred.cells)
    report = outputs["report"]
    nov = Parsed()
    nov.feed(report._repr_html_())
    assert "cs-novelty-table" in nov.classes
    assert sum(c == "known" for c in nov.cells) == report.count("known")


def test_notebook_views_draw_offline_in_a_browser(outputs: dict[str, Any], tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on this machine (Debian package `chromium`)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from test_app import FLAGS, PIXELS_JS

    page_file = tmp_path / "out.html"
    page_file.write_text(f"<!doctype html><meta charset='utf-8'><body>{outputs['hits']._repr_html_()}</body>")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        page = browser.new_page()
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:")) else outside.append(r.url))
        page.goto(page_file.as_uri())
        page.wait_for_function("() => document.querySelectorAll('.cs-view[data-state=ready]').length === 4")
        stats = page.eval_on_selector(".cs-view", PIXELS_JS)
        browser.close()
    assert stats["variance"] > 50 and outside == []
