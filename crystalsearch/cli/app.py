"""The ``crystalsearch`` Typer application. Sub-commands live in sibling modules and register here."""

from __future__ import annotations

import typer

from crystalsearch._version import __version__
from crystalsearch.cli.common import Group
from crystalsearch.io.checks import DEFAULT_MAX_SITES, MAX_SITES_CAP

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
    max_query_sites: int | None = typer.Option(
        None,
        "--max-query-sites",
        min=1,
        max=MAX_SITES_CAP,
        help=f"Sites allowed per input structure (default {DEFAULT_MAX_SITES}, at most {MAX_SITES_CAP}), given "
        "before the command: `crystalsearch --max-query-sites 2000 similar big.cif`. Not --max-sites, which "
        "filters search hits.",
    ),
) -> None:
    """crystalsearch command-line interface."""
    if max_query_sites is not None:
        import os

        from crystalsearch.io.checks import MAX_SITES_ENV

        os.environ[MAX_SITES_ENV] = str(max_query_sites)  # worker processes inherit it


def _register() -> None:
    from crystalsearch.cli import app_command, embed, evaluate, index, info, novelty, plot, predict, similar, train

    for module in (similar, predict, embed, novelty, train, evaluate, index, info, plot, app_command):
        module.register(app)


_register()
