"""The browser app: start-up (process start to page usable) and the search round trip of one uploaded CIF,
with the one-shot CLI as the naive baseline in the same run; optionally the screenshots for the docs.

Usage::

    python benchmarks/app.py                      # default index (built beforehand: warm cache)
    python benchmarks/app.py --index my_index --repeats 20 --json
    python benchmarks/app.py --screenshots docs   # also docs/app-{search,look,predict,novelty,map}.png

Start-up: ``crystalsearch app --no-browser`` in a fresh process; timed are (a) the address printed (the socket
listens), (b) the page interactive in headless Chromium (``window.__interactive``: files can be dropped and
searched; a search sent before the index is open waits for it) and (c) the index opened with its encoder
loaded (``window.__ready``). Run ``--starts`` times; the first start warms the OS file cache, the rest are
the warm numbers reported. Search: ``examples/NaCl.cif`` posted to ``/api/search`` (k=10, known verdicts,
thumbnails) ``--repeats`` times after one warm-up; the server-side time (from the response) and the client's
round trip are reported. Baseline: ``crystalsearch similar examples/NaCl.cif --known --json`` (a fresh
process per query: imports, index open, encoder load, search).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NACL = REPO / "examples" / "NaCl.cif"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # fmt: skip


def start(index: str) -> tuple[subprocess.Popen[str], str, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "crystalsearch", "app", "--index", index, "--no-browser"],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.match(r"open (\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the app did not start: {line!r}")
    return proc, match[1], t0


def post_search(url: str, cookie: str) -> tuple[float, dict[str, Any]]:
    import http.client
    import uuid

    port = int(url.split(":")[2].split("/")[0])
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n10\r\n--{boundary}\r\n'
            f'Content-Disposition: form-data; name="files"; filename="NaCl.cif"\r\n\r\n').encode()  # fmt: skip
    body += NACL.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/api/search", body=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                                            "Cookie": cookie})  # fmt: skip
    data = json.loads(conn.getresponse().read())
    return time.perf_counter() - t0, data


def shots(page: Any, folder: Path) -> dict[str, Any]:
    """Screenshots of NaCl's analogues (search, 3D look), predictions, novelty of examples/, the map."""
    page.set_input_files("#files", str(NACL))
    page.click("#search-button")
    page.wait_for_selector(".cs-hits-table tbody tr", timeout=120_000)
    ids = page.eval_on_selector_all(".cs-hits-table tbody tr", "rs => rs.map(r => r.dataset.id)")
    pick = next((i for i in ("mp-23193", "mp-22898") if i in ids), ids[1])  # KCl, else KBr, else the 2nd hit
    page.click(f'.cs-hits-table tr[data-id="{pick}"]')
    page.wait_for_function("() => document.querySelector('#view-hit').dataset.state === 'ready'", timeout=60_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(folder / "app-search.png"))
    page.locator("#look").screenshot(path=str(folder / "app-look.png"))
    page.click("#predict-button")
    page.wait_for_selector(".cs-predict-table tbody tr", timeout=300_000)
    page.locator("#predict").screenshot(path=str(folder / "app-predict.png"))
    page.goto(page.url.split("#")[0] + "#novelty")
    page.fill("#folder", str(REPO / "examples"))
    page.click("#novelty-button")
    page.wait_for_selector(".cs-summary", timeout=300_000)
    page.locator("#tab-novelty").screenshot(path=str(folder / "app-novelty.png"))
    page.goto(page.url.split("#")[0] + "#map")
    page.wait_for_function("() => window.__mapDrawn > 0", timeout=300_000)
    page.locator("#tab-map").screenshot(path=str(folder / "app-map.png"))
    return {"hits": ids, "looked_at": pick}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", default="default")
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--screenshots", type=Path, default=None, help="write app-*.png into this folder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                           "index": args.index, "starts": []}  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        for n in range(args.starts):
            proc, url, t0 = start(args.index)
            try:
                listening = time.perf_counter() - t0
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url, wait_until="commit")
                page.wait_for_function("() => window.__interactive === true", timeout=600_000)
                usable = time.perf_counter() - t0
                page.wait_for_function("() => window.__ready === true", timeout=600_000)
                ready = time.perf_counter() - t0
                out["starts"].append({"listening_s": round(listening, 3), "usable_s": round(usable, 3),
                                      "index_ready_s": round(ready, 3)})  # fmt: skip
                last = n == args.starts - 1
                if last:
                    cookie = "crystalsearch_token=" + url.split("token=")[1]
                    _, first = post_search(url, cookie)
                    out["first_search_server_s"] = first["seconds"]
                    trips, server = [], []
                    for _ in range(args.repeats):
                        trip, data = post_search(url, cookie)
                        trips.append(trip)
                        server.append(data["seconds"])
                    hits = data["results"][0]["hits"]
                    out["search"] = {"server_median_s": round(statistics.median(server), 4),
                                     "server_max_s": max(server), "repeats": args.repeats,
                                     "round_trip_median_s": round(statistics.median(trips), 4),
                                     "hits": [f"{h['material_id']} {h['formula']} {h['prototype']}" for h in hits[:5]],
                                     "verdict": data["results"][0]["verdict"]}  # fmt: skip
                    if args.screenshots:
                        args.screenshots.mkdir(parents=True, exist_ok=True)
                        out["screenshots"] = shots(page, args.screenshots)
                page.close()
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        browser.close()
    warm = out["starts"][1:] or out["starts"]
    out["warm_usable_median_s"] = round(statistics.median(s["usable_s"] for s in warm), 3)
    out["warm_index_ready_median_s"] = round(statistics.median(s["index_ready_s"] for s in warm), 3)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "crystalsearch", "similar", str(NACL), "--known", "--json", "--index",
                    args.index], check=True, capture_output=True, cwd=REPO)  # fmt: skip
    out["baseline_cli_similar_s"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(out, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
