"""Help that reads well and one CLI style: every command is a module-level
function, every option is described, help shows no markup accidents or Python type labels, and every command
has examples."""

from __future__ import annotations

import importlib
import inspect

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from crystalsearch.cli import app


def _commands() -> list[tuple[list[str], object]]:
    out: list[tuple[list[str], object]] = []

    def walk(path: list[str], cmd: object) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk([*path, name], sub)
        else:
            out.append((path, cmd))

    walk([], get_command(app))
    return out


COMMANDS = _commands()


def test_all_commands_are_listed() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"similar", "predict", "embed", "info", "index build", "index add", "index info", "train pretrain",
            "train finetune", "train all", "evaluate embeddings", "evaluate finetune", "evaluate augmentations",
            "evaluate retrieval", "plot umap"} <= names  # fmt: skip


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_is_a_module_level_function_and_every_option_described(path: list[str]) -> None:
    cmd = dict((tuple(p), c) for p, c in COMMANDS)[tuple(path)]
    func = inspect.unwrap(cmd.callback)  # type: ignore[attr-defined]
    module = importlib.import_module(func.__module__)
    assert "<locals>" not in func.__qualname__ and inspect.unwrap(getattr(module, func.__name__)) is func
    for param in cmd.params:  # type: ignore[attr-defined]
        assert param.help, f"{' '.join(path)}: {param.name} has no description"


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_reads_well(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Examples:" in text and f"crystalsearch {' '.join(path[:1])}" in text
    for accident in ("<list[", "<str>", "<int>", "<bool>", "<path>", "{QUERY", "( section)", "[/"):
        assert accident not in text, accident


def test_finetune_config_help_keeps_its_brackets() -> None:
    text = CliRunner().invoke(app, ["train", "finetune", "--help"], terminal_width=160).output
    assert "[finetune] section" in text
