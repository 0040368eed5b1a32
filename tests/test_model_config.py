"""``model.json`` sizes are checked before anything is allocated: negative, zero, huge or non-integer widths and
unknown settings are refused in one line naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crystalsearch.cli import app
from crystalsearch.errors import CheckpointError
from crystalsearch.model.checkpoint import MODEL_JSON, read_info, resolve
from crystalsearch.model.config import LIMITS, EncoderConfig
from crystalsearch.model.embed import Encoder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _checkpoint(tmp_path: Path, section: str, **changes: Any) -> Path:
    """A copy of the shipped default encoder with ``model.json[section]`` changed."""
    folder = Path(shutil.copytree(resolve("default"), tmp_path / "encoder"))
    raw = json.loads((folder / MODEL_JSON).read_text())
    raw[section] = {**raw[section], **changes}
    (folder / MODEL_JSON).write_text(json.dumps(raw))
    return folder


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"atom_fea_len": -64}, "atom_fea_len=-64 is outside 1..1024"),
        ({"n_conv": 0}, "n_conv=0 is outside"),
        ({"h_dim": 10**9}, "h_dim=1000000000 is outside 1..4096"),
        ({"atom_fea_len": 10**9}, "is outside"),
        ({"proj_dim": "128"}, "proj_dim must be a whole number"),
        ({"h_dim": 128.5}, "h_dim must be a whole number"),
        ({"n_conv": True}, "n_conv must be a whole number"),
        ({"width": 3}, "unknown setting"),
    ],
)
def test_nonsense_sizes_are_refused_before_allocating(tmp_path: Path, changes: dict[str, Any], reason: str) -> None:
    folder = _checkpoint(tmp_path, "config", **changes)
    with pytest.raises(CheckpointError, match=reason) as err:
        Encoder.load(folder)
    assert str(err.value).startswith(f"{folder / MODEL_JSON}: invalid model.json") and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("changes", "reason"), [({"radius": -8.0}, "radius"), ({"radius": 1e6}, "radius"), ({"max_neighbors": 0}, "max_")]
)
def test_nonsense_graph_settings_are_refused(tmp_path: Path, changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(CheckpointError, match=reason):
        read_info(_checkpoint(tmp_path, "graph", **changes))


def test_cli_says_one_line(tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path, "config", h_dim=-1)
    result = CliRunner().invoke(app, ["embed", str(EXAMPLES / "NaCl.cif"), "--encoder", str(folder),
                                      "--out", str(tmp_path / "e.npy")])  # fmt: skip
    assert result.exit_code == 2 and "h_dim=-1 is outside" in result.output and "Traceback" not in result.output


def test_config_bounds_hold_for_direct_construction() -> None:
    assert EncoderConfig().to_dict() == {"atom_fea_len": 64, "n_conv": 3, "h_dim": 128, "proj_dim": 128}
    EncoderConfig(**LIMITS)  # the largest allowed
    with pytest.raises(ValueError, match="n_conv=33"):
        EncoderConfig(n_conv=LIMITS["n_conv"] + 1)
