"""The ``crystalsearch`` Typer application. Sub-commands live in sibling modules and register here."""

from __future__ import annotations

import typer

from crystalsearch._version import __version__
from crystalsearch.cli.common import Group

app = typer.Typer(
    cls=Group,
    name="crystalsearch",
    help="Self-supervised crystal representations (CrystalCLR): similarity search over the Materials "
    "Project and property prediction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"crystalsearch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """crystalsearch command-line interface."""


def _register() -> None:
    from crystalsearch.cli import app_command, embed, evaluate, index, info, novelty, plot, predict, similar, train

    for module in (similar, predict, embed, novelty, train, evaluate, index, info, plot, app_command):
        module.register(app)


_register()
