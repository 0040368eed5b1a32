"""The start recommendation of `train finetune` / `train heads`, and `train finetune --labels my.csv`.

The library does the work (:mod:`crystalsearch.train.start`, :mod:`crystalsearch.predict.labels`); this module
parses, calls and prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystalsearch.cli.common import console, print_json

if TYPE_CHECKING:
    from crystalsearch.data.properties import PropertySpec
    from crystalsearch.train.config import FinetuneConfig


def given_start(init: str, sets: Sequence[str]) -> str | None:
    """The start the user named (``--from`` other than ``auto``, or ``--set init=...``), else None."""
    if init != "auto":
        return init
    named = [s.partition("=")[2].strip() for s in sets if s.partition("=")[0].strip() == "init"]
    return named[-1] if named else None


def resolve_start(prop: str, n_labels: int, *, given: str | None, quiet: bool) -> tuple[str, dict[str, Any]]:
    """(init to use, the recommendation as a dict with ``chosen``); prints the one-line recommendation."""
    from crystalsearch.train.start import describe_choice, recommend_start

    choice = recommend_start(prop, n_labels)
    init = given or choice.init
    if not quiet:
        console.print(describe_choice(choice, given=given), highlight=False, markup=False)
    return init, replace(choice, chosen=init).to_dict()


def choose_start(cfg: FinetuneConfig, *, init: str, sets: Sequence[str], quiet: bool) -> tuple[FinetuneConfig, Any]:
    """``cfg`` with the start the curves recommend for its number of training + validation labels (unless given)."""
    from crystalsearch.train.start import labels_for_finetune

    start, choice = resolve_start(cfg.property, labels_for_finetune(cfg), given=given_start(init, sets), quiet=quiet)
    return replace(cfg, init=start), choice


def labels_property(cfg: FinetuneConfig, *, unit: str | None) -> PropertySpec:
    """The property ``--labels`` trains: the registry's (``--unit``, if given, must be its unit), or the user's
    own, which needs ``--unit`` (learning log(y) with ``--set log_target=yes``, formulas kept together with
    ``--set group_by_formula=true``)."""
    from crystalsearch.data.properties import PROPERTIES, own_property
    from crystalsearch.errors import InputError

    if cfg.property in PROPERTIES:
        spec = PROPERTIES[cfg.property]
        if unit is not None and unit.strip() != spec.unit:
            raise InputError("--unit", f"{cfg.property} is in {spec.unit}, not {unit!r} (convert the values)")
        return spec
    if unit is None:
        raise InputError("--property", f"{cfg.property!r} is not a shipped property ({', '.join(PROPERTIES)}); to "
                         "train one of your own, give its unit: --unit GPa (or --unit '' if it has none)")  # fmt: skip
    try:
        return own_property(cfg.property, unit=unit, log=cfg.log_target == "yes",
                            compositional=cfg.group_by_formula)  # fmt: skip
    except ValueError as exc:
        raise InputError("--property", str(exc)) from None


def labels_command(cfg: FinetuneConfig, *, spec: PropertySpec, labels: Path, init: str, sets: Sequence[str],
                   seeds: int, out: Path, json_out: bool) -> None:  # fmt: skip
    """`train finetune --labels`: read, choose the start, train, calibrate where possible, report."""
    from crystalsearch.predict.labels import log_target, read_labels, train_on_labels

    data = read_labels(labels, log_target=log_target(spec, cfg), prop=spec.name)
    say = (lambda _m: None) if json_out else (lambda m: console.print(m, highlight=False, markup=False))
    for line in data.skipped:
        say(f"skipped {line}")
    start, choice = resolve_start(cfg.property, len(data.values), given=given_start(init, sets), quiet=json_out)
    summary = train_on_labels(data, replace(cfg, init=start), spec=spec, seeds=seeds, out=out, start=choice, log=say)
    if json_out:
        print_json(summary, command="train finetune")
        return
    say(f"{summary['n_labels']} labels: {summary['n_train']} train, {summary['n_val']} validation, "
        f"{summary['n_calib']} calibration")  # fmt: skip
    say(summary["calibration_note"])
