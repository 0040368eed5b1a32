"""Graph settings travel with every model, and cards tell the truth: a tiny encoder pretrained at radius 6 Å
with 8 neighbours and non-default widths, then met by structures everywhere (embedding, fine-tuning with
--from, property prediction, search)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pymatgen.core")

from crystalsearch.data import datasets  # noqa: E402
from crystalsearch.model.checkpoint import MODEL_JSON, graph_settings, read_info  # noqa: E402
from crystalsearch.model.config import EncoderConfig  # noqa: E402
from crystalsearch.model.embed import Encoder  # noqa: E402
from crystalsearch.structure.graph.batch import GraphBatch  # noqa: E402
from crystalsearch.structure.graph.build import build_graph  # noqa: E402
from crystalsearch.structure.graph.settings import GraphSettings  # noqa: E402
from crystalsearch.train.card import pretrain_card_for  # noqa: E402
from crystalsearch.train.config import FinetuneConfig, PretrainConfig  # noqa: E402

ODD = GraphSettings(radius=6.0, max_neighbors=8)
WIDTHS = EncoderConfig(atom_fea_len=16, n_conv=2, h_dim=32, proj_dim=24)


@pytest.fixture(scope="module", autouse=True)
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRYSTALSEARCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def odd_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crystalsearch.train.pretrain import pretrain

    config = PretrainConfig(
        name="odd", max_structures=64, batch_size=32, epochs=1, radius=ODD.radius, max_neighbors=ODD.max_neighbors,
        num_candidates=16, encoder=WIDTHS, compile=False, num_threads=1, probe=False,
    )  # fmt: skip
    return pretrain(config, out=tmp_path_factory.mktemp("run") / "odd", show_progress=False).encoder_dir


def test_card_and_model_json_describe_the_run(odd_encoder: Path) -> None:
    card = (odd_encoder / "README.md").read_text()
    for text in ("2 gated convolutions, 16 atom features", "32-d output h", "24-d projection head",
                 "| epochs | 1 |", "64 structures (`mp_structures`)", "radius 6 Å", "8 neighbours",
                 "16 candidate neighbours", "| hardware | CPU (", "thread) x 1 process, "):  # fmt: skip
        assert text in card, text
    assert "3 gated convolutions" not in card and "64 atom features" not in card and "short CPU run" not in card
    info = read_info(odd_encoder)
    assert info.graph == ODD and info.config == WIDTHS.to_dict()
    meta = info.metadata
    assert meta["epochs"] == meta["epochs_planned"] == meta["pretrain"]["epochs"] == 1
    assert meta["structures"] == 64 and meta["pretrain"]["encoder"] == WIDTHS.to_dict()
    assert [h["epochs"] for h in meta["history"]] == [[1, 1]] and meta["wall_time_s"] > 0
    assert pretrain_card_for(odd_encoder) == card  # a card is rebuilt from model.json alone


def test_encoder_builds_graphs_with_the_checkpoint_settings(odd_encoder: Path, nacl) -> None:  # type: ignore[no-untyped-def]
    enc = Encoder.load(odd_encoder)
    assert enc.graph == graph_settings(odd_encoder) == ODD and enc.dim == 32
    g = enc.graphs([nacl])[0]
    assert (g.radius, g.max_neighbors) == (6.0, 8) and g.edge_index.shape[1] == 8 * len(nacl)
    records = datasets.load("mp_structures").records[:5]
    assert enc.embed_store(enc.graph.store_for_records(records)).shape == (5, 32)
    with pytest.raises(ValueError, match="needs radius 6.0, 8 neighbours"):
        enc.embed_store(GraphSettings().store_for_records(records))  # graphs built for another model


def test_finetune_from_and_predict_use_the_checkpoint_settings(odd_encoder: Path, tmp_path: Path, nacl) -> None:  # type: ignore[no-untyped-def]
    from crystalsearch.predict.predictor import Predictor
    from crystalsearch.train.finetune import finetune, save_finetuned

    cfg = FinetuneConfig(property="melting_temperature", init=str(odd_encoder), lrs=(1e-3,), epochs=1, patience=1,
                         batch_size=32, max_structures=80, compile=False, num_threads=1)  # fmt: skip
    res = finetune(cfg, show_progress=False)
    assert res.graph == ODD and res.model.encoder.config == WIDTHS
    folder = save_finetuned(res, tmp_path / "heads" / "seed0", cfg, command="test")
    assert read_info(folder).graph == ODD
    assert "radius 6 Å, 8 neighbours" in (folder / "README.md").read_text()

    pred = Predictor.load("melting_temperature", folder=tmp_path / "heads")
    assert pred.graph == ODD
    value = pred.predict_values([nacl])[0, 0]
    member = pred.members[0]

    def run(graph) -> float:  # type: ignore[no-untyped-def]
        with torch.inference_mode():
            return float(member.transform.inverse(member.model(GraphBatch.from_graphs([graph])).numpy())[0])

    assert value == pytest.approx(run(build_graph(nacl, radius=6.0, max_neighbors=8)), rel=1e-5)
    assert value != pytest.approx(run(build_graph(nacl)), rel=1e-3)  # default graphs would give another number

    default_store = GraphSettings().store_for_records(datasets.load("melting_temperature").records[:80])
    with pytest.raises(ValueError, match="needs radius 6.0, 8 neighbours"):
        finetune(cfg, store=default_store, show_progress=False)


def test_search_queries_meet_the_encoder_like_the_index(odd_encoder: Path, tmp_path: Path) -> None:
    from crystalsearch.catalog.build import build_index
    from crystalsearch.identity.catalog import Catalog

    enc = Encoder.load(odd_encoder)
    records = list(datasets.load("mp_structures").records[:40])
    manifest = build_index(records, encoder=enc, out=tmp_path / "idx", progress=False)
    assert (manifest.encoder.radius, manifest.encoder.max_neighbors) == (6.0, 8)
    catalog = Catalog.open(tmp_path / "idx", encoder=enc)
    query = records[7]
    row = catalog.row_of(query.material_id)
    assert row is not None
    stored = catalog.vectors.vector(row)[: enc.dim]  # the encoder part of the row (a structure fingerprint may follow)
    np.testing.assert_allclose(catalog.embed([query.structure])[0], stored, atol=1e-5)


def test_old_model_json_without_the_edge_expansion_still_loads(odd_encoder: Path, tmp_path: Path) -> None:
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(odd_encoder, old)
    raw = json.loads((old / MODEL_JSON).read_text())
    raw["graph"] = {"radius": 6.0, "max_neighbors": 8}  # as written before the expansion was recorded
    (old / MODEL_JSON).write_text(json.dumps(raw))
    assert Encoder.load(old).graph == ODD
    raw["graph"]["gaussian"] = [0.0, 6.0, 0.2, 0.2]
    (old / MODEL_JSON).write_text(json.dumps(raw))
    from crystalsearch.errors import CheckpointError

    with pytest.raises(CheckpointError, match="Gaussian edge expansion"):
        Encoder.load(old)
