"""The one JSON schema of the CLI (``--json`` of every command) and of the app's API.

Every ``--json`` response is one object (documented in ``docs/cli.md``)::

    {"schema_version": 1, "command": "similar", "units": {...}, ..., "results": [...]}

* ``units`` is given once per response: the unit of every numeric field and property below it;
* every query has one entry in ``results``, in input order, with ``error`` (``null`` when it worked);
* every property key is present in every hit, ``null`` when the material has no value;
* numbers are rounded to their meaningful digits (:func:`crystalsearch.data.properties.round_value`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crystalsearch.data.properties import property_columns, round_value

__all__ = ["FIELD_UNITS", "SCHEMA_VERSION", "property_columns", "response", "round_value"]

SCHEMA_VERSION = 1
FIELD_UNITS: dict[str, str] = {
    "similarity": "score = w * structure_similarity + (1 - w) * chemistry_similarity (w: --by/--weight)",
    "structure_similarity": "(cosine of structure fingerprints + [same prototype label]) / 2; 1 = same type",
    "chemistry_similarity": "cosine similarity of L2-normalised CrystalCLR+CS representations",
    "density": "g/cm^3",
    "volume_per_atom": "Å^3/atom",
}


def response(command: str, results: list[dict[str, Any]], *, units: Mapping[str, str], **meta: Any) -> dict[str, Any]:
    """The envelope of every ``--json`` output."""
    return {"schema_version": SCHEMA_VERSION, "command": command, "units": dict(units), **meta, "results": results}
