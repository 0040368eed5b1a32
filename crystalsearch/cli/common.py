"""Shared CLI plumbing: consoles, one-line errors, JSON output, tidy help pages."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)

# Option value labels in --help (instead of Python types such as <list[str]>)
_METAVARS = {"int": "N", "float": "X", "Path": "PATH", "str": "TEXT"}


def print_error(message: str) -> None:
    """One red ``error:`` line on stderr; the message is printed literally (no rich markup)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, *, code: int = 2) -> typer.Exit:
    """Print ``message`` as one red line on stderr and return an Exit to raise."""
    print_error(message)
    return typer.Exit(code)


def one_line_errors(func: F) -> F:
    """Turn library errors (and a few common OS errors) into a one-line message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from crystalsearch.errors import CrystalSearchError

        try:
            return func(*args, **kwargs)
        except CrystalSearchError as exc:
            raise fail(str(exc)) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise fail(f"{exc.filename}: {exc.strerror}") from None
        except KeyboardInterrupt:
            raise fail("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any, *, command: str | None = None) -> None:
    """Write ``obj`` as JSON to stdout (no rich markup, safe for pipes). With ``command``, a dict gets the
    ``schema_version`` and ``command`` keys every JSON output starts with (``docs/cli.md``)."""
    if command is not None and isinstance(obj, dict):
        from crystalsearch.cli.schema import SCHEMA_VERSION

        obj = {"schema_version": SCHEMA_VERSION, "command": command, **obj}
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _label(annotation: Any) -> str:
    args = getattr(annotation, "__args__", None)
    if args:  # list[str], str | None
        named = [a for a in args if a is not type(None)]
        return _label(named[0]) if named else "TEXT"
    return _METAVARS.get(getattr(annotation, "__name__", ""), "TEXT")


def _tidy(params: list[Any]) -> list[Any]:
    """Readable value labels: QUERY... for arguments, N/X/PATH/TEXT for options, nothing for flags."""
    for p in params:
        if getattr(p, "_tidy", False):
            continue
        if isinstance(p, TyperArgument):
            name = p.metavar or (p.name or "").upper()
            usage = name if p.required else f"[{name}]"
            p._usage_display_name = functools.partial(str, usage)  # type: ignore[method-assign]
            p.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        elif isinstance(p, TyperOption):
            if p.is_flag:
                p.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
            elif p.metavar is None:
                p.metavar = _label(p.type_descriptor.annotation)
        if p.help:
            p.help = escape(p.help)  # "[finetune] section" must not be eaten as rich markup
        p._tidy = True
    return params


class Command(TyperCommand):
    """A command whose help shows readable value labels (see :func:`_tidy`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(super().get_params(ctx))


class Group(TyperGroup):
    """A command group with the same help conventions as :class:`Command`."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(super().get_params(ctx))


def examples(*lines: str) -> str:
    """An ``Examples:`` epilog, one command per paragraph (rich help keeps them on separate lines)."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


def add_command(app: typer.Typer, func: Callable[..., Any], name: str, *, epilog: str) -> None:
    """Register a module-level command function with the shared help conventions (help from its docstring)."""
    import inspect

    paragraphs = inspect.cleandoc(func.__doc__ or "").split("\n\n")
    text = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    app.command(name, cls=Command, help=escape(text), epilog=escape(epilog))(func)


def sub_app(help_text: str, **kwargs: Any) -> typer.Typer:
    """A command group (``index``, ``train``, ``evaluate``, ``plot``) with the shared help conventions."""
    return typer.Typer(help=help_text, cls=Group, **kwargs)
