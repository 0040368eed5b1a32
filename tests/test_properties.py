"""The one registry of properties: every place that lists properties reads it (adding one is one row)."""

from __future__ import annotations

from crystalsearch.data import datasets
from crystalsearch.data.properties import ALIASES, PROPERTIES, PROPERTY_COLUMNS, REGISTRY, UNITS, by_column, by_head


def test_every_consumer_derives_from_the_registry() -> None:
    from crystalsearch.catalog.db import Material
    from crystalsearch.catalog.reader import MATERIAL_COLUMNS
    from crystalsearch.catalog.where import ALIASES as WHERE_ALIASES
    from crystalsearch.cli.train_plan import HEAD_DATASETS
    from crystalsearch.data.entries import PROPERTIES as ENTRY_PROPERTIES
    from crystalsearch.evaluate.report import COLUMNS

    assert ENTRY_PROPERTIES == PROPERTY_COLUMNS and datasets.PROPERTY_UNITS == UNITS
    db_columns = {c.name for c in Material.__table__.columns}
    assert set(PROPERTY_COLUMNS) <= db_columns and set(PROPERTY_COLUMNS) <= set(MATERIAL_COLUMNS)
    expected = {name: spec.dataset for name, spec in PROPERTIES.items()}
    assert expected == HEAD_DATASETS
    for p in REGISTRY:
        assert by_column(p.column) is p and all(WHERE_ALIASES[a] == p.column for a in p.aliases)
        if p.head:
            assert by_head(p.head) is p and ALIASES[p.head] == p.column and PROPERTIES[p.head].column == p.column
            assert p.dataset in datasets.DATASETS and p.column in datasets.load(p.dataset).units
    assert COLUMNS["melting_temperature"] == "Melting temperature (K)"
