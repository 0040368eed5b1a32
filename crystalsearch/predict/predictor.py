"""Property prediction with evidence: an ensemble of fine-tuned heads plus the nearest known materials.

Each answer carries the value, the ensemble standard deviation over seeds (``uncertainty``: the spread,
not an error bar), the 3 nearest indexed materials that have a known value of the property (the
evidence), and, for heads calibrated under the protocol split (``calibration.json``, see
:mod:`crystalsearch.predict.conformal`): a split-conformal prediction interval at the requested coverage, and
an out-of-distribution warning when the members disagree more than on 90% of calibration materials.
The value is then the calibrated point prediction (the ensemble mean, stacked with a Magpie composition
model where that helped on validation). Heads without a calibration keep the older behaviour: ensemble
mean, no interval, and a warning when the nearest material with a known value is less similar than the
1st percentile seen by held-out training materials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalsearch.errors import CheckpointError

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalsearch.identity.catalog import Catalog
    from crystalsearch.model.cgcnn import PropertyModel
    from crystalsearch.predict.conformal import Calibration
    from crystalsearch.structure.graph.settings import GraphSettings
    from crystalsearch.train.finetune import TargetTransform

EVIDENCE = 3


@dataclass(frozen=True)
class Neighbor:
    material_id: str
    formula: str
    value: float
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {"material_id": self.material_id, "formula": self.formula, "value": round(self.value, 6),
                "similarity": round(self.similarity, 6)}  # fmt: skip


@dataclass(frozen=True)
class Prediction:
    query: str
    property: str
    value: float
    unit: str
    uncertainty: float | None  # None: a single head, no ensemble spread
    neighbors: tuple[Neighbor, ...]
    nearest_similarity: float | None = None
    warning: str | None = None
    members: tuple[float, ...] = field(default_factory=tuple)
    interval: tuple[float, float] | None = None  # calibrated prediction interval (units)
    coverage: float | None = None  # its nominal coverage

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query, "property": self.property, "value": round(self.value, 6), "unit": self.unit,
            "uncertainty": None if self.uncertainty is None else round(self.uncertainty, 6),
            "neighbors": [n.to_dict() for n in self.neighbors],
            "nearest_similarity": None if self.nearest_similarity is None else round(self.nearest_similarity, 6),
            "in_distribution": self.warning is None, "warning": self.warning,
            "ensemble": [round(m, 6) for m in self.members],
            "interval": None if self.interval is None else [round(v, 6) for v in self.interval],
            "coverage": self.coverage,
        }  # fmt: skip


class Predictions(list):  # type: ignore[type-arg]
    """The :class:`Prediction` list of :meth:`Predictor.predict`; in notebooks a table per query with its
    structure in 3D (``structures``: label -> Structure)."""

    def __init__(self, predictions: list[Prediction], *, structures: dict[str, Structure] | None = None) -> None:
        super().__init__(predictions)
        self.structures = structures or {}

    def _repr_html_(self) -> str:
        from crystalsearch.html import notebook, predictions_table, structure_view, view_html

        parts = []
        for label in dict.fromkeys(p.query for p in self):
            rows = [p.to_dict() for p in self if p.query == label]
            view = structure_view(self.structures[label]) if label in self.structures else None
            figure = view_html(view, width=240, height=200, title=label) if view else ""
            parts.append(f'<div style="display:flex;gap:12px;align-items:flex-start">{figure}'
                         f"{predictions_table(rows)}</div>")  # fmt: skip
        return notebook("".join(parts), views=bool(self.structures))


def heads_dir(prop: str) -> Path:
    """The user's rebuilt heads for ``prop`` if any, else the shipped ones."""
    from crystalsearch.model.checkpoint import shipped_models_dir
    from crystalsearch.paths import user_models_dir

    user = user_models_dir() / "heads" / prop
    if any(user.glob("seed*/model.json")):
        return user
    return shipped_models_dir() / "heads" / prop


def member_paths(folder: Path) -> list[Path]:
    """The ensemble members in ``folder``: its ``seed*/`` sub-folders, or the folder itself when it is one model."""
    return sorted(p.parent for p in folder.glob("seed*/model.json")) or (
        [folder] if (folder / "model.json").is_file() else []
    )


def available_properties() -> list[str]:
    from crystalsearch.data.properties import PROPERTIES

    return [p for p in PROPERTIES if any(heads_dir(p).glob("seed*/model.json"))]


@dataclass
class _Member:
    model: PropertyModel
    transform: TargetTransform  # standardised prediction -> property units (clipped to the training range)


class Predictor:
    """An ensemble of fine-tuned property heads (one per seed) for one property."""

    def __init__(
        self, prop: str, members: list[_Member], *, column: str, unit: str, folder: Path, graph: GraphSettings,
        calibration: Calibration | None = None, composition: Any = None,
    ) -> None:  # fmt: skip
        self.property, self.members, self.column, self.unit, self.folder = prop, members, column, unit, folder
        self.graph = graph  # how the heads' graphs are built (from their checkpoints)
        self.calibration = calibration  # conformal interval + OOD flag (None: heads from before calibration)
        self.composition = composition  # Magpie model stacked with the ensemble (None: ensemble alone)

    @classmethod
    def load(cls, prop: str | None, *, folder: str | Path | None = None) -> Predictor:
        """The heads of ``prop`` in ``folder`` (default: the user's rebuilt heads, else the shipped ones).

        ``prop`` may be None with a ``folder``: the property is the one the heads were trained for. Heads
        trained for another property than ``prop`` are refused (:class:`CheckpointError`)."""
        from crystalsearch.data.properties import PROPERTIES, spec_of_heads
        from crystalsearch.model.cgcnn import EncoderConfig, PropertyModel
        from crystalsearch.model.checkpoint import load_state_dict, read_info
        from crystalsearch.train.finetune import TargetTransform, property_spec

        if folder is not None and not Path(folder).is_dir():
            raise CheckpointError(f"{folder}: no such heads folder")
        if prop is None and folder is None:
            raise CheckpointError("no property given and no heads folder to read it from")
        root = Path(folder) if folder is not None else heads_dir(str(prop))
        paths = member_paths(root)
        infos = [read_info(path) for path in paths]  # each model.json read once: property, spec and weights
        if prop is None:
            prop = next((str(i.metadata["property"]) for i in infos if isinstance(i.metadata.get("property"), str)),
                        None)  # fmt: skip
            if prop is None:
                raise CheckpointError(f"{folder}: no fine-tuned heads that record their property (model.json)")
        if prop in PROPERTIES or not paths:
            spec = property_spec(prop)
        else:  # a property of the user's own (train finetune --labels): as its heads record it
            try:
                spec = spec_of_heads(infos[0].metadata)
            except ValueError as exc:
                raise CheckpointError(f"{paths[0]}: {exc}") from None
        if not paths:
            have = ", ".join(available_properties()) or "none"
            raise CheckpointError(f"{root}: no fine-tuned heads for {prop} (available: {have}); train them with "
                                  f"`crystalsearch train finetune --property {prop} --seeds 3`")  # fmt: skip
        members, graphs = [], set()
        for path, info in zip(paths, infos, strict=True):
            meta = info.metadata
            if meta.get("property", prop) != prop:
                raise CheckpointError(f"{path}: these heads were trained for {meta['property']}, not {prop}")
            model = PropertyModel(EncoderConfig(**info.config))
            model.load_state_dict(load_state_dict(info))
            model.eval()
            members.append(_Member(model, TargetTransform.from_dict(meta["transform"])))
            graphs.add(info.graph)
        if len(graphs) > 1:
            raise CheckpointError(
                f"{root}: the heads were trained on graphs built differently ({sorted(map(str, graphs))})"
            )
        calibration, composition = _calibration_of(root, prop=prop)
        return cls(prop, members, column=spec.column, unit=spec.unit, folder=root, graph=graphs.pop(),
                   calibration=calibration, composition=composition)  # fmt: skip

    def predict_values(self, structures: list[Structure]) -> np.ndarray:
        """Ensemble predictions [n_members, n] in the property's units."""
        import torch

        from crystalsearch.model.embed import flush_denormal
        from crystalsearch.structure.graph.batch import GraphBatch

        graphs = self.graph.graphs(structures)
        out = np.zeros((len(self.members), len(graphs)))
        for start in range(0, len(graphs), 256):
            batch = GraphBatch.from_graphs(graphs[start : start + 256])
            with torch.inference_mode(), flush_denormal(torch.device("cpu")):
                for m, member in enumerate(self.members):
                    t = member.model(batch).float().numpy()
                    out[m, start : start + len(t)] = member.transform.inverse(t)
        return out

    def point_and_interval(
        self, structures: list[Structure], values: np.ndarray, *, coverage: float
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Point predictions [n], interval bounds [n] (or ``None``) and OOD flags [n] (or ``None``) from the
        members' ``values`` [m, n]."""
        cal = self.calibration
        point = values.mean(axis=0)
        if cal is None or values.shape[1] == 0:
            return point, None, None, None
        point = cal.bounded(point)
        if self.composition is not None and cal.stacked():
            from crystalsearch.predict.conformal import magpie_of_structures

            magpie = magpie_of_structures(structures)
            if cal.stack == "residual":
                point = cal.bounded(self.composition.point(point, values, magpie))
            else:
                comp = cal.t_inv(self.composition.predict(magpie))
                point = cal.weight * point + (1 - cal.weight) * cal.bounded(comp)
        lo, hi = cal.interval(point, values, coverage)
        return point, lo, hi, cal.out_of_distribution(values)

    def predict(
        self, queries: list[tuple[str, Structure]], *, catalog: Catalog | None = None, coverage: float = 0.9
    ) -> Predictions:
        """Predictions with uncertainty, interval (calibrated heads) and evidence for ``(label, structure)``."""
        structures = [s for _, s in queries]
        values = self.predict_values(structures) if queries else np.zeros((len(self.members), 0))
        point, lo, hi, ood = self.point_and_interval(structures, values, coverage=coverage)
        calibrated = self.calibration is not None
        threshold = self.similarity_threshold(catalog) if catalog is not None and not calibrated else None
        results = []
        for i, (label, structure) in enumerate(queries):
            neighbors: tuple[Neighbor, ...] = ()
            nearest, warning = None, None
            if catalog is not None and self.column:  # a property of one's own has no catalog values
                hits = catalog.similar(structure, k=EVIDENCE, where=f"{self.column} is not None")
                neighbors = tuple(
                    Neighbor(h.material_id, h.formula, float(h.properties[self.column]), h.similarity) for h in hits
                )
                nearest = neighbors[0].similarity if neighbors else None
                if nearest is not None and threshold is not None and nearest < threshold:
                    warning = (
                        f"far from the training data: nearest material with known {self.property} has "
                        f"similarity {nearest:.3f} < {threshold:.3f} (1st percentile of held-out materials)"
                    )
            if ood is not None and ood[i]:
                warning = (
                    f"out of distribution: the {len(self.members)} heads disagree more than on "
                    f"{self.calibration.ood_quantile:.0%} of calibration materials"  # type: ignore[union-attr]
                )
            members = values[:, i]
            interval = None if lo is None or hi is None else (float(lo[i]), float(hi[i]))
            results.append(Prediction(
                query=label, property=self.property, value=float(point[i]), unit=self.unit,
                uncertainty=float(members.std(ddof=1)) if len(members) > 1 else None, neighbors=neighbors,
                nearest_similarity=nearest, warning=warning, members=tuple(float(v) for v in members),
                interval=interval, coverage=coverage if interval is not None else None,
            ))  # fmt: skip
        return Predictions(results, structures=dict(queries))

    def similarity_threshold(self, catalog: Catalog) -> float | None:
        """1st percentile of held-out materials' best similarity to a training material with a known value.

        Computed once per (index encoder, property) from the shipped dataset's test split and cached.
        """
        from crystalsearch.atomic import atomic_write_json
        from crystalsearch.catalog.faiss_index import normalise
        from crystalsearch.data import datasets
        from crystalsearch.paths import cache_dir
        from crystalsearch.train.finetune import property_spec

        if not self.column:
            return None  # a property of the user's own: no shipped labels to measure it on
        spec = property_spec(self.property)
        path = cache_dir() / "calibration" / f"{catalog.manifest.encoder.hash}-{self.property}.json"
        if path.is_file():
            return float(json.loads(path.read_text())["threshold"])
        ds = datasets.load(spec.dataset)
        split = ds.split(seed=0)
        rows = [catalog.row_of(ds.records[int(i)].material_id) for i in split.train[:5000]]
        train_rows = np.array([r for r in rows if r is not None])
        test = [ds.records[int(i)] for i in split.test[:500]]
        if len(train_rows) < 10 or not test:
            return None
        train_vecs = np.stack([catalog.vectors.vector(int(r))[: catalog.chem_dim] for r in train_rows])  # h part
        q = normalise(catalog.encoder.embed([r.structure for r in test]))
        best = (q @ train_vecs.T).max(axis=1)
        threshold = float(np.percentile(best, 1))
        atomic_write_json(path, {"threshold": threshold, "n_test": len(test), "n_train": len(train_rows)})
        return threshold


def _calibration_of(folder: Path, *, prop: str) -> tuple[Calibration | None, Any]:
    """The heads folder's conformal calibration of ``prop`` and stacked composition model (``None`` when
    absent), each file checked against the folder's ``manifest.json`` first (:mod:`crystalsearch.predict.manifest`)."""
    from crystalsearch.predict.conformal import COMPOSITION_MODEL, FILE, load_calibration
    from crystalsearch.predict.manifest import verify
    from crystalsearch.predict.stacking import load_composition

    if (legacy := folder / "composition.pkl").exists():
        raise CheckpointError(f"{legacy}: a pickled composition model, which crystalsearch never loads (a pickle "
                              "can run code); rewrite it with `crystalsearch evaluate calibration --fit`")  # fmt: skip
    verify(folder, [FILE, COMPOSITION_MODEL])
    try:
        calibration = load_calibration(folder, prop=prop)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder / FILE}: unreadable calibration.json ({exc})") from None
    if calibration is None or not calibration.stacked():
        return calibration, None
    path = folder / COMPOSITION_MODEL
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (the calibration stacks the heads with a composition model)")
    return calibration, load_composition(path, stack=calibration.stack)
