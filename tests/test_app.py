"""The browser app (`crystalsearch app`) on a small real index: HTTP checks (token, caps, bad input) and a
real headless Chromium driven by Playwright (search, 3D views, predictions, novelty, material page, map).

The app runs as `crystalsearch app --index <small index> --no-browser` in a subprocess. Browser tests are
skipped only where Chromium or the playwright package is absent (`.ci/run` installs both). Screenshots go to
docs/ (app-*.png) when CRYSTALSEARCH_SCREENSHOTS is set (benchmarks/app.py takes them on the full catalog).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crystalsearch.catalog.build import build_index
from crystalsearch.model.embed import Encoder

REPO = Path(__file__).resolve().parents[1]
NACL = REPO / "examples" / "NaCl.cif"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # fmt: skip
PIXELS_JS = """async (el) => {
  const img = new Image(); img.src = el._viewer.pngURI(); await img.decode();
  const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data; let n = 0, s = 0, s2 = 0; const colours = new Set();
  for (let i = 0; i < d.length; i += 4) { const g = (d[i] + d[i+1] + d[i+2]) / 3; n++; s += g; s2 += g * g;
    if (colours.size < 5000) colours.add((d[i] << 16) | (d[i+1] << 8) | d[i+2]); }
  return {variance: s2 / n - (s / n) ** 2, colours: colours.size}; }"""


def small_entries() -> list[Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_search import small_entries as entries

    return entries(60)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("app-index") / "small"
    build_index(small_entries(), encoder=Encoder.random(seed=0), out=out, progress=False, chunk_size=64)
    return out


@pytest.fixture(scope="module")
def own_heads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A head of a property of one's own (shipped shear moduli of 20 materials, named vickers_hardness)."""
    from typer.testing import CliRunner

    from crystalsearch.cli import app
    from crystalsearch.data import datasets

    folder = tmp_path_factory.mktemp("own-heads")
    ds = datasets.load("mp_elasticity")
    y = ds.targets("shear_modulus_vrh")
    rows = [f"{ds.records[i].material_id},{y[i]}" for i in range(len(ds)) if y[i] > 0][:20]
    (folder / "labels.csv").write_text("structure,vickers_hardness\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(app, ["train", "finetune", "-p", "vickers_hardness", "--unit", "GPa", "--labels",
                                      str(folder / "labels.csv"), "--out", str(folder / "heads"), "--epochs", "1",
                                      "--set", "lrs=1e-3", "--set", "compile=false", "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder / "heads"


@pytest.fixture(scope="module")
def server(index_dir: Path, own_heads: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    env = {**os.environ, "CRYSTALSEARCH_CACHE": str(tmp_path_factory.mktemp("app-cache")), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "crystalsearch", "app", "--index", str(index_dir), "--no-browser",
           "--heads", str(own_heads)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.match(r"open (http://127\.0\.0\.1:(\d+))/\?token=(\S+)", line)
        assert match, f"unexpected first line {line!r}"
        yield {"url": match[1], "port": int(match[2]), "token": match[3], "proc": proc}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def request(srv: dict[str, Any], path: str, *, cookie: bool = True, **kw: Any) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv["port"], timeout=120)
    headers = dict(kw.pop("headers", {}))
    if cookie:
        headers["Cookie"] = f"crystalsearch_token={srv['token']}"
    conn.request(kw.pop("method", "GET"), path, headers=headers, **kw)
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def multipart(files: list[tuple[str, bytes]], fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    head = '--{}\r\nContent-Disposition: form-data; name="files"; filename="{}"\r\n\r\n'
    parts += [head.format(boundary, name).encode() + data + b"\r\n" for name, data in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(srv: dict[str, Any], path: str, files: list[tuple[str, bytes]], **fields: str) -> tuple[int, Any]:
    body, ctype = multipart(files, fields)
    status, _, data = request(srv, path, method="POST", body=body, headers={"Content-Type": ctype})
    return status, json.loads(data)


# -- HTTP: the lock, caps and bad input --------------------------------------------------------------------
def test_token_refused_then_accepted_as_a_cookie(server: dict[str, Any]) -> None:
    assert request(server, "/api/status", cookie=False)[0] == 403
    assert request(server, "/?token=wrong", cookie=False)[0] == 403
    status, headers, _ = request(server, f"/?token={server['token']}", cookie=False)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and server["token"] in cookie
    status, headers, page = request(server, "/")
    assert status == 200 and b"<title>crystalsearch</title>" in page
    assert "default-src 'self'" in headers["content-security-policy"]


def test_bad_inputs_name_the_file_and_the_server_keeps_serving(server: dict[str, Any]) -> None:
    big = "big\n1.0\n60 0 0\n0 60 0\n0 0 60\nNa\n10000\nDirect\n" + "".join(
        f"{i % 22 / 22:.5f} {i // 22 % 22 / 22:.5f} {i // 484 / 22:.5f}\n" for i in range(10000)
    )
    files = [("broken.cif", b"data_x\n_cell_length_a 5\nloop_\n_atom_site_label\n"), ("junk.cif", os.urandom(300)),
             ("big.vasp", big.encode()), ("NaCl.cif", NACL.read_bytes())]  # fmt: skip
    status, res = post(server, "/api/search", files, k="3")
    assert status == 200, res
    by_query = {r["query"]: r for r in res["results"]}
    assert by_query["junk.cif"]["error"].startswith("junk.cif: binary file")
    assert by_query["broken.cif"]["error"].startswith("broken.cif: ")
    assert by_query["big.vasp"]["error"].startswith("big.vasp: ") and "10000" in by_query["big.vasp"]["error"]
    assert by_query["NaCl.cif"]["error"] is None and len(by_query["NaCl.cif"]["hits"]) == 3
    status, res = post(server, "/api/search", [], text="mp-0000001")
    assert status == 200 and "neither a material id" in res["results"][0]["error"]
    assert request(server, "/api/material/mp-0000001")[0] == 400
    assert request(server, "/api/status")[0] == 200


def test_disordered_structure_is_refused(server: dict[str, Any]) -> None:
    from pymatgen.core import Lattice, Structure

    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5] * 3])
    status, res = post(server, "/api/search", [("mixed.cif", s.to(fmt="cif").encode())])
    assert status == 200 and res["results"][0]["error"].startswith("mixed.cif: ")
    assert "disorder" in res["results"][0]["error"] or "partial" in res["results"][0]["error"]


def test_uploads_are_capped_and_where_errors_name_the_field(server: dict[str, Any]) -> None:
    status, res = post(server, "/api/search", [(f"{i}.cif", b"x") for i in range(25)])
    assert status == 400 and "more than 20 files" in res["error"]
    status, res = post(server, "/api/search", [("NaCl.cif", NACL.read_bytes())], where="colour > 1")
    assert status == 400 and "unknown column 'colour'" in res["field_errors"]["where"]


def test_novelty_of_uploaded_files_and_zip(server: dict[str, Any], tmp_path: Path) -> None:
    import time
    import zipfile

    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../../evil/NaCl.cif", NACL.read_text())
        z.writestr("Si.cif", (REPO / "examples" / "Si.cif").read_text())
    status, res = post(server, "/api/novelty", [("c.zip", archive.read_bytes()), ("again.cif", NACL.read_bytes())])
    assert status == 200 and res["total"] == 3
    for _ in range(600):
        status, _, data = request(server, f"/api/novelty/{res['key']}")
        job = json.loads(data)
        if job["finished"]:
            break
        time.sleep(0.2)
    assert job["error"] is None and job["report"]["duplicates"] == 1, job
    assert not (tmp_path.parent / "evil").exists()
    status, headers, csv_text = request(server, f"/api/novelty/{res['key']}.csv")
    assert status == 200 and csv_text.decode().splitlines()[0].startswith("label,status,formula")
    assert "NaCl.cif,known,NaCl,225,mp-22862" in csv_text.decode()


# -- a real browser ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page(server: dict[str, Any]) -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (Debian package `chromium`)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        outside: list[str] = []
        tab.on(
            "request", lambda r: None if r.url.startswith((server["url"], "data:", "blob:")) else outside.append(r.url)
        )
        tab.goto(f"{server['url']}/?token={server['token']}")
        tab.wait_for_function("() => window.__ready === true", timeout=60_000)
        yield tab
        assert outside == [], f"requests left the machine: {outside}"
        browser.close()


def shot(page: Any, name: str, selector: str | None = None) -> None:
    folder = os.environ.get("CRYSTALSEARCH_SCREENSHOTS")
    if folder:
        target = page.locator(selector) if selector else page
        target.screenshot(path=str(Path(folder) / name))


def drawn(page: Any, selector: str) -> dict[str, float]:
    page.wait_for_function(f"() => document.querySelector('{selector}').dataset.state === 'ready'", timeout=30_000)
    return page.eval_on_selector(selector, PIXELS_JS)


def test_browser_search_nacl_shows_rocksalt_analogues_in_3d(page: Any) -> None:
    page.set_input_files("#files", str(NACL))
    page.click("#search-button")
    page.wait_for_selector(".cs-hits-table tbody tr", timeout=60_000)
    rows = page.eval_on_selector_all(
        ".cs-hits-table tbody tr", "rs => rs.map(r => [r.dataset.id, r.cells[5].textContent])"
    )
    ids = [r[0] for r in rows]
    prototypes = [r[1] for r in rows]
    assert ids[0] == "mp-22862" and "mp-23193" in ids  # NaCl itself (a known material), then KCl among its analogues
    assert prototypes[0] == prototypes[ids.index("mp-23193")]  # KCl has NaCl's rocksalt prototype label
    assert "known as mp-22862" in page.inner_text(".cs-verdict")
    assert page.locator(".cs-hits-table svg.cs-thumb").count() == len(ids)
    page.click('.cs-hits-table tr[data-id="mp-23193"]')
    for view in ("#view-query", "#view-hit"):
        stats = drawn(page, view)
        assert stats["variance"] > 50 and stats["colours"] > 20, stats
    assert "mp-23193" in page.inner_text("#cap-hit")
    assert page.eval_on_selector_all("#legend-hit .cs-el", "es => es.map(e => e.textContent)") == ["Cl", "K"]
    page.select_option("#cell", "primitive")
    page.wait_for_function("() => document.querySelector('#view-hit').dataset.state === 'ready'")
    assert "cell=primitive" in page.get_attribute("#download-hit", "href")
    page.select_option("#cell", "conventional")
    page.wait_for_function("() => document.querySelector('#view-hit').dataset.state === 'ready'")
    shot(page, "app-search.png")
    shot(page, "app-look.png", "#look")
    page.click("th:has-text('similarity')")  # sortable: ascending similarity puts the best hit last
    last = page.eval_on_selector(".cs-hits-table tbody tr:last-child", "r => r.dataset.id")
    assert last == "mp-22862"


def test_browser_broken_file_message_and_where_error(page: Any, tmp_path: Path) -> None:
    junk = tmp_path / "junk.cif"
    junk.write_bytes(os.urandom(200))
    page.set_input_files("#files", [str(junk), str(NACL)])
    page.click("#search-button")
    page.wait_for_selector("#search-errors p", timeout=60_000)
    assert page.inner_text("#search-errors").startswith("junk.cif: binary file")
    page.wait_for_selector(".cs-hits-table tbody tr")
    page.fill("#where", "band_gap >> 1")
    page.click("#search-button")
    page.wait_for_function("() => document.querySelector('.field-error[data-for=where]').textContent.length > 0")
    assert "--where" in page.inner_text(".field-error[data-for=where]")
    page.fill("#where", "")


def test_browser_predict_panel_shows_intervals(page: Any) -> None:
    page.set_input_files("#files", str(NACL))
    page.click("#search-button")
    page.wait_for_selector(".cs-hits-table tbody tr", timeout=60_000)
    page.click("#predict-button")
    page.wait_for_selector(".cs-predict-table tbody tr", timeout=120_000)
    rows = page.eval_on_selector_all(
        ".cs-predict-table tbody tr", "rs => rs.map(r => Array.from(r.cells, c => c.textContent))"
    )
    assert len(rows) >= 2
    own = next(r for r in rows if r[0] == "vickers hardness")  # the heads given with --heads
    assert float(own[1]) > 0 and own[2] == "" and own[3] == "GPa" and own[6] == ""  # no interval, no evidence
    for prop, value, interval, *_ in (r for r in rows if r is not own):
        lo, hi = re.match(r"(-?[\d.]+) – (-?[\d.]+) \(90%\)", interval).groups()  # type: ignore[union-attr]
        assert float(lo) <= float(value) <= float(hi), (prop, value, interval)
    bulk = next(r for r in rows if r[0] == "bulk modulus")
    assert bulk[4] != ""  # NaCl is mp-22862, whose catalog bulk modulus is shown beside the prediction
    assert page.locator(".cs-predict-table a.cs-id").count() >= 3  # evidence neighbours are links
    shot(page, "app-predict.png", "#predict")


def test_browser_novelty_of_a_folder(page: Any, tmp_path: Path) -> None:
    from pymatgen.core import Lattice, Structure

    from crystalsearch.identity.novelty import check_novelty

    folder = tmp_path / "candidates"
    folder.mkdir()
    shutil.copy(NACL, folder / "NaCl.cif")
    shutil.copy(NACL, folder / "NaCl_copy.cif")
    cscl = Structure(Lattice.cubic(3.2), ["Li", "I"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # LiI in the CsCl type
    (folder / "LiI_cscl.cif").write_text(cscl.to(fmt="cif"))
    (folder / "broken.cif").write_text("data_broken\n_cell_length_a 4.0\n")
    page.goto(page.url.split("#")[0] + "#novelty")
    page.fill("#folder", str(folder))
    page.click("#novelty-button")
    page.wait_for_selector(".cs-summary", timeout=120_000)
    summary = page.inner_text(".cs-summary")
    index = page.inner_text("#status").split(" · ")[-1]
    assert summary == check_novelty([str(folder)], index=index).summary()
    assert summary.startswith("4 candidates: 2 unique (1 known, 1 novel), 1 duplicates")
    assert page.eval_on_selector("#novelty-progress", "p => p.value === p.max")
    status = page.eval_on_selector_all(
        ".cs-novelty-table tbody tr",
        "rs => rs.map(r => [r.cells[0].textContent, r.cells[1].textContent, r.cells[4].textContent])",
    )
    assert ["NaCl.cif", "known", "mp-22862"] in status
    assert page.is_visible("#novelty-csv") and page.is_visible("#novelty-json")
    shot(page, "app-novelty.png", "#tab-novelty")


def test_browser_material_page_and_map(page: Any) -> None:
    page.goto(page.url.split("#")[0] + "#material/mp-22862")
    page.wait_for_selector("#material-body h2", timeout=60_000)
    text = page.inner_text("#material-body")
    assert "Polymorphs of NaCl" in text and "10 nearest neighbours" in text and "provenance" in text
    stats = drawn(page, "#material-body .cs-view")
    assert stats["variance"] > 50
    page.goto(page.url.split("#")[0] + "#map")
    page.wait_for_function("() => window.__mapDrawn > 0", timeout=60_000)
    assert page.evaluate("window.__mapDrawn") == 67
    box = page.locator("#map").bounding_box()
    pixels = page.evaluate("() => { const c = document.getElementById('map'); const d = c.getContext('2d')"
                           ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
                           " for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }")  # fmt: skip
    assert pixels > 67 * 4 and box is not None
    shot(page, "app-map.png", "#tab-map")


def test_a_search_sent_while_the_index_opens_waits_for_it(index_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CRYSTALSEARCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "crystalsearch", "app", "--index", str(index_dir), "--no-browser", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        match = re.match(r"open http://127\.0\.0\.1:(\d+)/\?token=(\S+)", proc.stdout.readline() if proc.stdout else "")
        assert match
        srv = {"port": int(match[1]), "token": match[2]}
        status, res = post(srv, "/api/search", [("NaCl.cif", NACL.read_bytes())], k="2")  # before it is ready
        assert status == 200 and [h["material_id"] for h in res["results"][0]["hits"]][0] == "mp-22862"
        _, _, body = request(srv, "/api/status")
        assert json.loads(body)["ready"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_default_index_build_shows_its_progress_in_the_status(tmp_path: Path) -> None:
    from crystalsearch.app.state import AppConfig, AppState

    state = AppState(AppConfig(work=tmp_path))
    assert state.status()["build"] is None and state.status()["ready"] is False
    state._note("Building the default search index of the Materials Project release 2025.02.12 (170,466 materials)")
    state._advance(256)
    state._advance(256)
    assert state.status()["build"] == {"done": 512, "total": 170466}
    assert state.status()["message"].startswith("Building the default search index")


def test_other_hosts_need_expose() -> None:
    from typer.testing import CliRunner

    from crystalsearch.cli.app import app

    result = CliRunner().invoke(app, ["app", "--host", "0.0.0.0", "--no-browser"])  # noqa: S104 - refused without --expose
    assert result.exit_code == 2 and "--expose" in result.output


def test_map_places_a_query_at_its_most_similar_points() -> None:
    """A map point's own vector lands near that point (within the mean distance of points from the centre)."""
    from crystalsearch.app.explore import _pca, _unit, place

    rng = np.random.default_rng(0)
    vectors = _unit(rng.normal(size=(60, 16)).astype(np.float32))
    axes = {"vectors": vectors, "xy": _pca(vectors)}
    spread = float(np.mean(np.linalg.norm(axes["xy"] - axes["xy"].mean(axis=0), axis=1)))
    for i in (0, 17, 42):
        x, y = place(axes, vectors[i])
        assert np.hypot(x - axes["xy"][i, 0], y - axes["xy"][i, 1]) < spread
