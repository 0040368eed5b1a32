"""Which start to fine-tune from — the pretrained encoder or random weights — for a number of labels.

The answer is read from the measured learning curves shipped as ``crystalsearch/data/learning_curves.json``
(written by ``crystalsearch evaluate curves --reference``; the full tables are in ``docs/learning-curves.md``):
at the measured training-set size nearest to the given number of labels (on a log scale), the random start when
it beat the pretrained one by more than the seed spread (the standard deviation of the paired per-seed
differences), else the pretrained start (no measurable difference: the shipped default). A property without
curves takes the majority over the measured properties at their nearest sizes (ties: the pretrained start).
Nothing here is hard-coded: new curves change the answers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

REFERENCE = "learning_curves.json"
STARTS = {"pretrained": "default", "random": "random"}  # recommendation -> FinetuneConfig.init


@dataclass(frozen=True)
class StartChoice:
    """A recommended start and what it rests on (``init``: the value for ``--from`` / ``FinetuneConfig.init``)."""

    head: str  # the property's head name
    n_labels: int
    start: str  # "pretrained" | "random"
    basis: str  # one sentence: the measurement behind the choice
    measured_property: str | None = None
    measured_labels: int | None = None
    pretrained_mae: float | None = None
    random_mae: float | None = None
    diff_mean: float | None = None  # random - pretrained, paired over seeds (units)
    diff_std: float | None = None
    chosen: str = ""  # the start actually used ("pretrained", "random" or a checkpoint) when recorded

    @property
    def init(self) -> str:
        return STARTS[self.start]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_reference(path: str | Path | None = None) -> dict[str, Any]:
    """The shipped learning-curve reference data (or the file at ``path``)."""
    if path is not None:
        return dict(json.loads(Path(path).read_text()))
    text = resources.files("crystalsearch.data").joinpath(REFERENCE).read_text()
    return dict(json.loads(text))


def _nearest(rows: list[dict[str, Any]], n_labels: int) -> dict[str, Any]:
    """The measured size nearest to ``n_labels`` on a log scale."""
    return min(rows, key=lambda r: abs(math.log(max(r["n_labels"], 1)) - math.log(max(n_labels, 1))))


def _from_row(prop: str, measured: str, row: dict[str, Any], n_labels: int, unit: str) -> StartChoice:
    beyond = abs(row["diff_mean"]) > row["diff_std"]
    start = "random" if beyond and row["diff_mean"] < 0 else "pretrained"
    basis = (f"{measured} at {row['n_labels']} labels: pretrained start {row['pretrained']:.4g}, random start "
             f"{row['random']:.4g} {unit} test MAE (random minus pretrained {row['diff_mean']:+.3g} ± "
             f"{row['diff_std']:.2g} over {row['seeds']} seeds, {'beyond' if beyond else 'within'} the seed spread"
             f"{'' if beyond else ': no measurable difference, so the default pretrained start'})")  # fmt: skip
    return StartChoice(prop, n_labels, start, basis, measured, row["n_labels"], row["pretrained"], row["random"],
                       row["diff_mean"], row["diff_std"])  # fmt: skip


def recommend_start(prop: str, n_labels: int, *, reference: dict[str, Any] | None = None) -> StartChoice:
    """The start the learning curves recommend for ``n_labels`` labels of ``prop`` (see the module docstring)."""
    ref = reference if reference is not None else load_reference()
    props: dict[str, Any] = ref.get("properties", {})
    if prop in props and props[prop]["sizes"]:
        info = props[prop]
        return _from_row(prop, prop, _nearest(info["sizes"], n_labels), n_labels, info["unit"])
    votes = [_from_row(p, p, _nearest(i["sizes"], n_labels), n_labels, i["unit"])
             for p, i in props.items() if i["sizes"]]  # fmt: skip
    if not votes:
        return StartChoice(prop, n_labels, "pretrained", "no learning curves available: the shipped default start")
    n_random = sum(v.start == "random" for v in votes)
    start = "random" if n_random > len(votes) - n_random else "pretrained"
    gains = ", ".join(f"{v.measured_property} {v.diff_mean:+.3g}" for v in votes)
    basis = (f"no curve for {prop}; at the nearest measured sizes the random start was better beyond the seed "
             f"spread for {n_random} of {len(votes)} properties (random minus pretrained: {gains})")  # fmt: skip
    return StartChoice(prop, n_labels, start, basis)


def describe_choice(choice: StartChoice, *, given: str | None) -> str:
    """One line for the terminal: the recommendation, and what is used."""
    rec = f"learning curves recommend the {choice.start} start for {choice.n_labels:,} labels ({choice.basis})"
    if given is None:
        return f"{rec}; using it (override with --from)"
    return f"{rec}; using --from {given} as given"


def labels_for_finetune(config: Any) -> int:
    """Training + validation labels of a ``train finetune`` run (its dataset's seeded split, as it trains)."""
    from crystalsearch.data import datasets
    from crystalsearch.train.finetune import property_spec

    spec = property_spec(config.property)
    ds = datasets.load(spec.dataset)
    y = ds.targets(spec.column)
    n = min(len(ds), config.max_structures) if config.max_structures else len(ds)
    split = ds.split(seed=config.seed, group_by_formula=config.group_by_formula).labelled(y, n=n)
    return len(split.train) + len(split.val)


def labels_for_heads(prop: str, max_train: int) -> int:
    """Training + validation labels of a ``train heads`` ensemble (the protocol split, capped)."""
    from crystalsearch.train.protocol import protocol_split

    split = protocol_split(prop).capped(max_train)
    return len(split.train) + len(split.val)
