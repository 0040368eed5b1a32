"""`crystalsearch train heads`: a seed ensemble of property heads under the fixed protocol split.

Settings come from ``crystalsearch/configs/heads.toml`` (or ``--config PATH``) and ``--set``; members
are written to ``OUT/seed<k>`` as they finish, so the same command resumes. Calibrate the finished
ensemble with ``crystalsearch evaluate calibration --property P --heads OUT --fit``.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path

import typer

from crystalsearch.cli.common import add_command, console, examples, one_line_errors, print_json

SET_HELP = "Override a setting: --set key=value (seeds, max_train, or any [finetune] key; repeatable)."


@one_line_errors
def heads(
    prop: str = typer.Option(
        ..., "--property", "-p", help="A head property of the registry (crystalsearch/data/properties.py)."
    ),  # fmt: skip
    out: Path = typer.Option(..., "--out", help="Ensemble folder (seed<k>/ sub-folders); rerun to resume."),
    config: Path | None = typer.Option(
        None, "--config", help="TOML with [heads] / [heads.PROPERTY] (default: the shipped heads.toml)."
    ),  # fmt: skip
    init: str = typer.Option(
        "auto",
        "--from",
        help="auto (the learning curves' recommendation for this many "
        "labels) | default | random | PATH; --set init=... also names it.",
    ),  # fmt: skip
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train (or resume) a seed ensemble on the property's protocol split: same train/val for every member,
    calibration and test parts never seen. The start (pretrained or random) is the learning curves'
    recommendation for the number of training + validation labels unless --from or --set init= names one."""
    from crystalsearch.cli.schema import response
    from crystalsearch.cli.train_labels import given_start, resolve_start
    from crystalsearch.train.ensemble import load_ensemble_config, train_ensemble
    from crystalsearch.train.finetune import property_spec
    from crystalsearch.train.start import labels_for_heads

    spec = property_spec(prop)
    cfg = load_ensemble_config(prop, config, sets=sets)
    command = " ".join(shlex.quote(a) for a in ["crystalsearch", *sys.argv[1:]])
    log = (lambda _m: None) if json_out else (lambda m: console.print(m, highlight=False))
    choice = None
    if not cfg.finetune.warm_start:  # a continued ensemble keeps its members' start
        n_labels = labels_for_heads(prop, cfg.max_train)
        start, choice = resolve_start(prop, n_labels, given=given_start(init, sets), quiet=json_out)
        cfg = replace(cfg, finetune=replace(cfg.finetune, init=start))
    summary = train_ensemble(cfg, out, command=command, log=log, start_choice=choice)
    if json_out:
        print_json(response("train heads", summary.pop("members"), units={"mae": spec.unit}, **summary))


def register(train_app: typer.Typer) -> None:
    """Attach `train heads` to the `train` group."""
    add_command(train_app, heads, "heads", epilog=examples(
        "crystalsearch train heads --property bulk_modulus --out runs/heads/bulk_modulus",
        "crystalsearch train heads -p formation_energy --out runs/heads/formation_energy --set max_train=0",
    ))  # fmt: skip
