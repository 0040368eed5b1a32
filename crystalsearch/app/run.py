"""Start the app: bind the socket, print the address with its token, open the browser, serve."""

from __future__ import annotations

import secrets
import socket
import sys
import threading
from collections.abc import Callable

from crystalsearch.app.state import AppConfig, AppState

__all__ = ["LOCAL", "bind", "serve"]

LOCAL = "127.0.0.1"


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket on ``host``:``port`` (a free port when ``port`` is None or 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port or 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    config: AppConfig,
    *,
    host: str = LOCAL,
    port: int | None = None,
    open_browser: bool = True,
    token: str | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """Serve the app until interrupted. Prints ``open http://HOST:PORT/?token=...`` once it listens."""
    import uvicorn

    from crystalsearch.app.server import create_app

    token = token or secrets.token_urlsafe(24)
    state = AppState(config)
    state.open_in_background()
    sock = bind(host, port)
    shown = LOCAL if host in ("0.0.0.0", "::") else host  # noqa: S104 - names the wildcard, binds nothing
    url = f"http://{shown}:{sock.getsockname()[1]}/?token={token}"
    say(f"open {url}")
    sys.stdout.flush()
    if open_browser:
        import webbrowser

        threading.Timer(0.3, lambda: webbrowser.open(url)).start()
    asgi = create_app(state, token)
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", access_log=False, timeout_graceful_shutdown=3))
    try:
        server.run(sockets=[sock])
    finally:
        state.close()
        sock.close()
