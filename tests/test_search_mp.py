"""`index build --from-mp` up to the network edge: a fake MPRester stands in for the Materials Project API."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crystalsearch.catalog.build import build_index
from crystalsearch.data.materials_project import MP_FIELDS, MPQuery, fetch_mp_entries
from crystalsearch.errors import CrystalSearchError
from crystalsearch.identity.catalog import Catalog
from crystalsearch.io import read_structure
from crystalsearch.model.embed import Encoder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class FakeMPRester:
    """Records how it was called and returns summary documents as mp-api does (objects or dicts)."""

    calls: list[dict[str, Any]] = []
    fail: Exception | None = None

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.materials = types.SimpleNamespace(summary=types.SimpleNamespace(search=self._search))

    def __enter__(self) -> FakeMPRester:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _search(self, **kwargs: Any) -> list[Any]:
        FakeMPRester.calls.append({"api_key": self.api_key, **kwargs})
        if FakeMPRester.fail is not None:
            raise FakeMPRester.fail
        nacl = read_structure(EXAMPLES / "NaCl.cif")
        si = read_structure(EXAMPLES / "Si.cif")
        disordered = nacl.copy()
        disordered.replace(0, {"Na": 0.5, "K": 0.5})
        return [
            types.SimpleNamespace(material_id="mp-22862", formula_pretty="NaCl", structure=nacl,
                                  formation_energy_per_atom=-2.1, band_gap=5.0, efermi=-0.7,
                                  bulk_modulus={"voigt": 25.0, "reuss": 22.0, "vrh": 23.8}, shear_modulus=None),
            {"material_id": "mp-149", "formula_pretty": "Si", "structure": si, "formation_energy_per_atom": 0.0,
             "band_gap": 0.62, "efermi": 5.6, "bulk_modulus": {"vrh": 88.0}, "shear_modulus": {"vrh": 61.0}},
            {"material_id": "mp-0", "structure": disordered},
        ]  # fmt: skip


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    FakeMPRester.calls = []
    FakeMPRester.fail = None
    monkeypatch.setenv("CRYSTALSEARCH_CACHE", str(tmp_path / "cache"))


def test_missing_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MP_API_KEY", raising=False)
    with pytest.raises(CrystalSearchError, match="MP_API_KEY"):
        fetch_mp_entries(rester=FakeMPRester)


def test_missing_mp_api_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MP_API_KEY", "secret")
    monkeypatch.setitem(sys.modules, "mp_api", None)
    monkeypatch.setitem(sys.modules, "mp_api.client", None)
    with pytest.raises(CrystalSearchError, match=r"pip install 'crystalsearch\[mp\]'"):
        fetch_mp_entries()


def test_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MP_API_KEY", "secret")
    FakeMPRester.fail = ConnectionError(
        "Max retries exceeded with url: /materials/summary/ (Name or service not known)"
    )
    with pytest.raises(CrystalSearchError, match="request failed.*ConnectionError.*network"):
        fetch_mp_entries(rester=FakeMPRester)


def test_download_to_entries_and_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MP_API_KEY", "secret")
    got = fetch_mp_entries(MPQuery(elements=("Na", "Cl"), limit=2500), rester=FakeMPRester)
    (call,) = FakeMPRester.calls
    assert call["api_key"] == "secret" and call["fields"] == MP_FIELDS and call["elements"] == ["Na", "Cl"]
    assert call["chunk_size"] == 1000 and call["num_chunks"] == 3
    assert [e.material_id for e in got.entries] == ["mp-22862", "mp-149"] and got.skipped_disordered == 1
    nacl, si = got.entries
    assert nacl.properties == {
        "formation_energy_per_atom": -2.1,
        "band_gap": 5.0,
        "efermi": -0.7,
        "bulk_modulus_vrh": 23.8,
    }
    assert si.properties["shear_modulus_vrh"] == 61.0 and si.source == "materials_project"
    out = tmp_path / "mp"
    build_index(got.entries, encoder=Encoder.random(seed=0), out=out, progress=False)
    with Catalog.open(out) as cat:
        assert cat.similar(str(EXAMPLES / "NaCl.cif"), k=1)[0].material_id == "mp-22862"
        assert cat.similar("mp-149", k=5, where="bulk_modulus_vrh > 20")[0].material_id == "mp-22862"


def test_cli_from_mp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from crystalsearch.cli import app

    monkeypatch.setenv("MP_API_KEY", "secret")
    fake = types.ModuleType("mp_api.client")
    fake.MPRester = FakeMPRester  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mp_api", types.ModuleType("mp_api"))
    monkeypatch.setitem(sys.modules, "mp_api.client", fake)
    out = tmp_path / "mpidx"
    args = ["index", "build", "--from-mp", "--mp-chemsys", "Na-Cl", "--encoder", "random", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["count"] == 2 and FakeMPRester.calls[0]["chemsys"] == "Na-Cl"
    monkeypatch.delenv("MP_API_KEY")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "MP_API_KEY" in result.output and "Traceback" not in result.output
    assert os.path.isdir(out)
