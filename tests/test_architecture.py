"""House rules that hold for the whole package: no import cycles (lazy imports included), one atomic file
writer, no Python under index/ and training/, and shipped checkpoints whose metadata tells the truth."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "crystalsearch"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> package modules it imports anywhere (top level, inside functions, under TYPE_CHECKING)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in modules and d != name and not name.startswith(d + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# The catalog_data <-> datasets cycle of the mp2025 work is gone (types in crystalsearch.data.records, the label
# sources passed in as a loader): no known cycles remain.
KNOWN_CYCLES: list[list[str]] = []


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert [c for c in found if c not in KNOWN_CYCLES] == []
    assert [c for c in KNOWN_CYCLES if c not in found] == [], "a known cycle is gone: remove it from KNOWN_CYCLES"


# The layers, lowest first. A module may import modules of its own layer or of lower ones, never of a
# higher one (lazy and TYPE_CHECKING imports included); DEVELOPERS.md describes each layer.
LAYERS: list[tuple[str, ...]] = [
    ("_version", "errors", "paths", "atomic", "distributed", "progress"),  # infrastructure
    ("data", "html"),  # shipped datasets, records, property registry, index entries; HTML rendering
    ("io",),  # reading structure files
    ("structure",),  # graphs, augmentations, fingerprint, symmetry, prototypes, "the same material"
    ("model",),  # encoder, checkpoints, embedding
    ("train",),  # losses, pretraining, fine-tuning, ensembles
    ("catalog",),  # index build, FAISS, SQLite, filters, --where, scoring
    ("identity", "predict"),  # known/novelty verdicts; property prediction and calibration
    ("evaluate",),  # the paper's evaluation, retrieval and calibration studies
    ("cli", "app"),  # the interfaces
]


def layer_of(module: str) -> int:
    """The layer of a package module (the package root and ``__main__`` sit above every layer)."""
    if module in ("crystalsearch", "crystalsearch.__main__"):
        return len(LAYERS)
    name = module.removeprefix("crystalsearch.")
    for i, group in enumerate(LAYERS):
        if any(name == g or name.startswith(g + ".") for g in group):
            return i
    raise AssertionError(f"{module} belongs to no layer: add its package to LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{a} -> {b}" for a in sorted(graph) for b in sorted(graph[a]) if layer_of(b) > layer_of(a)]


def test_no_import_goes_up_a_layer() -> None:
    assert upward_imports(import_graph()) == []


def test_layer_check_finds_an_upward_import() -> None:
    graph = {"crystalsearch.catalog.shard": {"crystalsearch.train.config"},
             "crystalsearch.progress": {"crystalsearch.cli.common"}}  # fmt: skip
    assert upward_imports(graph) == ["crystalsearch.progress -> crystalsearch.cli.common"]
    with pytest.raises(AssertionError, match="no layer"):
        layer_of("crystalsearch.search.known")


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


WRITERS = {("tempfile", "mkstemp"), ("tempfile", "mkdtemp"), ("os", "replace"), ("os", "rename")}


def test_one_atomic_writer() -> None:
    """Temporary files and renames live in crystalsearch.atomic only (no hand-rolled atomic writers)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "atomic.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and (node.func.value.id, node.func.attr) in WRITERS
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.value.id}.{node.func.attr}")
    assert offenders == []


def test_index_and_training_hold_no_python() -> None:
    assert [str(p.relative_to(ROOT)) for d in ("index", "training") for p in (ROOT / d).rglob("*.py")] == []


@pytest.mark.parametrize("name", ["crystalclr_cs", "crystalclr"])
def test_shipped_encoder_metadata_tells_the_truth(name: str) -> None:
    from crystalsearch.atomic import file_sha256
    from crystalsearch.model.checkpoint import read_info, shipped_models_dir
    from crystalsearch.train.card import pretrain_card_for

    folder = shipped_models_dir() / name
    info = read_info(folder)
    meta = info.metadata
    assert meta["pretrain"]["epochs"] == meta["epochs"] == meta["metrics"]["epoch"]
    assert meta["history"][-1]["epochs"][1] == meta["epochs"] and meta["history"][0]["epochs"][0] == 1
    assert meta["pretrain"]["encoder"] == info.config  # the widths the weights have
    assert file_sha256(folder / "weights.pt") == info.weights_sha256  # metadata fixed, weights untouched
    assert (folder / "README.md").read_text() == pretrain_card_for(folder)


def test_shipped_default_weights_unchanged() -> None:
    """Indexes and heads are keyed on the default encoder's hash: its weights must never change by accident."""
    from crystalsearch.model.checkpoint import read_info
    from crystalsearch.model.embed import Encoder

    default = Encoder.load("default")
    assert default.hash == "89bfe52b85a74a55"
    for model_json in (PACKAGE / "models" / "heads").glob("*/seed*/model.json"):
        assert read_info(model_json.parent).graph == default.graph  # fine-tuned from it, on its graphs


def test_one_lock_and_one_place_for_homes() -> None:
    """flock lives in crystalsearch.atomic; the cache and data homes (their environment variables) in
    crystalsearch.paths."""
    homes = {"CRYSTALSEARCH_CACHE", "CRYSTALSEARCH_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "flock" and path != PACKAGE / "atomic.py":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} flock")
            if isinstance(node, ast.Constant) and node.value in homes and path != PACKAGE / "paths.py":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert offenders == []
