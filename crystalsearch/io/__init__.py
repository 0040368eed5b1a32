"""Structure I/O: read CIF, POSCAR, pymatgen JSON files, folders, globs and Materials Project ids.

``import crystalsearch.io`` is light; pymatgen is imported only when a structure is parsed.

Example::

    from crystalsearch.io import ReadReport, read_structures

    report = ReadReport()
    for source_id, structure in read_structures(["examples", "mp-149"], report=report):
        ...
    report.exit_code  # 2 if any input failed (each in report.failed, a one-line InputError)

Without a ``report`` (or with ``strict=True``) the first bad input raises its InputError instead.

See :mod:`crystalsearch.io.readers` for formats and ids, and :mod:`crystalsearch.io.checks` for the
sanity thresholds every structure must pass.
"""

from __future__ import annotations

from crystalsearch.io.checks import DEFAULT_MAX_SITES, check_structure
from crystalsearch.io.readers import ReadReport, read_items, read_structure, read_structures

__all__ = ["DEFAULT_MAX_SITES", "ReadReport", "check_structure", "read_items", "read_structure", "read_structures"]
