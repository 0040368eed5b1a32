"""The app's HTTP interface (Starlette): the page, its static files, and a small JSON API over
:mod:`crystalsearch.app.actions` and :mod:`crystalsearch.app.explore`.

Every request needs the token printed at start: given once as ``?token=...`` it is turned into an
HttpOnly, SameSite=Strict cookie (and the token is dropped from the address); anything else gets 403.
Errors in the input come back as ``{"error": "<file or field>: <problem>"}`` with status 400; nothing a
request does stops the server.
"""

from __future__ import annotations

import hmac
import logging
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from crystalsearch.app import actions, explore
from crystalsearch.app.uploads import read_form, save_uploads
from crystalsearch.errors import CrystalSearchError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.types import ASGIApp, Receive, Scope, Send

    from crystalsearch.app.state import AppState

__all__ = ["COOKIE", "TokenGate", "create_app"]

COOKIE = "crystalsearch_token"
LOG = logging.getLogger("crystalsearch.app")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; worker-src 'self' blob:; font-src 'self'; object-src 'none'; base-uri 'none'")  # fmt: skip
REFUSED = ("403: this crystalsearch app needs the token it printed when it started: open the address it printed "
           "(http://127.0.0.1:PORT/?token=...)\n")  # fmt: skip


class TokenGate:
    """ASGI middleware: the token as a query parameter (once, then a cookie) or no access."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    def _ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token")
        if self._ok(given):
            rest = request.url.remove_query_params("token")
            target = rest.path + (f"?{rest.query}" if rest.query else "")
            response: Response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
        elif given is None and self._ok(request.cookies.get(COOKIE)):
            await self.app(scope, receive, send)
            return
        else:
            response = PlainTextResponse(REFUSED, status_code=403)
        await response(scope, receive, send)


def _guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Input problems as 400 with one line; anything else as 500 with one line (logged); never a crash."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except CrystalSearchError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception as exc:  # the server keeps serving whatever one request does
            LOG.exception("request %s failed", request.url.path)
            return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    return run


def _shown(folder: Path) -> Callable[[str], str]:
    """How a file of the upload folder is named in the page: its name, without the app's folder."""
    prefix = str(folder) + os.sep
    return lambda text: text.replace(prefix, "")


def create_app(state: AppState, token: str) -> ASGIApp:
    """The ASGI application of one running app (``state``), locked with ``token``."""
    cfg = state.config
    app_static = resources.files("crystalsearch.app").joinpath("static")
    vendor = resources.files("crystalsearch.html").joinpath("static")

    async def page(request: Request) -> Response:
        return FileResponse(str(app_static.joinpath("index.html")), headers={"Content-Security-Policy": CSP})

    async def status(request: Request) -> Response:
        return JSONResponse(state.status())

    async def search(request: Request) -> Response:
        form = await read_form(request, max_files=cfg.max_search_files, max_bytes=cfg.max_request_bytes)
        fields = {name: str(form.get(name) or "") for name in ("k", "by", "weight", "where")}
        opts, errors = actions.options(**fields)
        if errors:
            return JSONResponse({"field_errors": errors}, status_code=400)
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
        text = str(form.get("text") or "")
        if not files and not text.strip():
            return JSONResponse({"error": "drop or pick structure files, or type a material id or formula"}, 400)
        dest, paths = await save_uploads(files, state.work, max_files=cfg.max_search_files,
                                         max_bytes=cfg.max_request_bytes)  # fmt: skip
        result = await run_in_threadpool(actions.search, state, paths, text, opts=opts, display=_shown(dest))
        LOG.info("search: %d queries in %.3f s", len(result["results"]), result["seconds"])
        return JSONResponse(result)

    async def structure(request: Request) -> Response:
        q = request.query_params
        supercell = 2 if q.get("supercell") == "2" else 1
        name, cif = await run_in_threadpool(actions.structure_cif, state, key=q.get("key"), material_id=q.get("id"),
                                            cell=q.get("cell", "given"), supercell=supercell)  # fmt: skip
        headers = {"Content-Disposition": f'attachment; filename="{name}"'} if q.get("download") else {}
        return PlainTextResponse(cif, headers=headers, media_type="chemical/x-cif")

    async def material(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(actions.material_page, state, request.path_params["mid"]))

    async def predict(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        return JSONResponse(await run_in_threadpool(actions.predict, state, str(body.get("key", ""))))

    async def novelty(request: Request) -> Response:
        form = await read_form(request, max_files=cfg.max_novelty_files, max_bytes=cfg.max_request_bytes)
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
        folder = str(form.get("folder") or "")
        if folder.strip():
            paths = explore.folder_files(folder, limit=cfg.max_novelty_files)
            job = explore.start_novelty(state, paths, _shown(Path(folder.strip()).expanduser()))
        elif files:
            dest, paths = await save_uploads(files, state.work, max_files=cfg.max_novelty_files,
                                             max_bytes=cfg.max_request_bytes)  # fmt: skip
            job = explore.start_novelty(state, paths, _shown(dest))
        else:
            return JSONResponse({"error": "drop or pick files or a zip archive, or type a local folder"}, 400)
        return JSONResponse({"key": job.key, "total": job.total})

    async def novelty_job(request: Request) -> Response:
        key, _, kind = request.path_params["job"].partition(".")
        job = state.jobs.get(key)
        if job is None:
            return JSONResponse({"error": f"no novelty check {key!r}"}, status_code=404)
        if kind in ("csv", "json") and job.report is not None:
            text = explore.novelty_csv(job) if kind == "csv" else explore.novelty_json(job)
            headers = {"Content-Disposition": f'attachment; filename="novelty.{kind}"'}
            return PlainTextResponse(text, headers=headers, media_type=f"text/{kind}")
        return JSONResponse(explore.job_status(job, link=actions.LINK))

    async def catalog_map(request: Request) -> Response:
        q = request.query_params
        keys = [k for k in q.get("keys", "").split(",") if k]
        return JSONResponse(await run_in_threadpool(explore.catalog_map, state, q.get("prop", "band_gap"), keys))

    routes = [
        Route("/", page),
        Route("/api/status", _guarded(status)),
        Route("/api/search", _guarded(search), methods=["POST"]),
        Route("/api/structure", _guarded(structure)),
        Route("/api/material/{mid}", _guarded(material)),
        Route("/api/predict", _guarded(predict), methods=["POST"]),
        Route("/api/novelty", _guarded(novelty), methods=["POST"]),
        Route("/api/novelty/{job}", _guarded(novelty_job)),
        Route("/api/map", _guarded(catalog_map)),
        Mount("/static", app=StaticFiles(directory=str(app_static)), name="static"),
        Mount("/vendor", app=StaticFiles(directory=str(vendor)), name="vendor"),
    ]
    return TokenGate(Starlette(routes=routes), token)
