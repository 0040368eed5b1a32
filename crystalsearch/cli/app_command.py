"""`crystalsearch app`: the local browser app (search, 3D views, predictions, novelty, map), offline."""

from __future__ import annotations

import typer

from crystalsearch.cli.common import add_command, examples, one_line_errors, print_error

EXAMPLES = examples(
    "crystalsearch app                          # default index, opens the browser",
    "crystalsearch app --index my_index --port 8800 --no-browser",
    "crystalsearch app --heads my-heads           # also predict with heads trained on your own labels",
)


@one_line_errors
def app_command(
    index: str = typer.Option("default", "--index", help="Index folder (default: the shipped/cached index)."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port to listen on (default: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (anything but 127.0.0.1 needs --expose)."),
    expose: bool = typer.Option(
        False, "--expose", help="Allow --host other than 127.0.0.1 (other machines can then reach the app)."
    ),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open the default browser."),
    heads: list[str] = typer.Option(
        [],
        "--heads",
        help="A heads folder of your own (train finetune --labels); "
        "its property is predicted beside the shipped ones. Repeatable.",
    ),  # fmt: skip
) -> None:
    """Start the local app in the browser: drop a crystal, see its analogues in 3D with properties,
    intervals and a known/novel verdict. Prints `open http://127.0.0.1:PORT/?token=...`; every request
    needs that token (a cookie after the first visit). Nothing is fetched from outside the machine.
    """
    from crystalsearch.app.run import LOCAL, serve
    from crystalsearch.app.state import AppConfig

    if host not in (LOCAL, "localhost") and not expose:
        print_error(f"--host {host}: the app binds {LOCAL} only; add --expose to serve other machines")
        raise typer.Exit(2)
    if host not in (LOCAL, "localhost"):
        typer.echo(f"warning: serving on {host}: anyone who can reach this machine and has the token can use "
                   "the app and read the folders it is given", err=True)  # fmt: skip
    serve(AppConfig(index=index, heads=tuple(heads)), host=host, port=port or None, open_browser=not no_browser)


def register(app: typer.Typer) -> None:
    """Attach the `app` command to the application."""
    add_command(app, app_command, "app", epilog=EXAMPLES)
