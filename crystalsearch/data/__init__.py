"""Data: the shipped datasets and their records, the property registry, compact structure packing, and what
goes into an index (entries from datasets, files or the Materials Project API).

The shipped data files (CSV, JSON lines, packed structures; provenance and licences in ``README.md`` and
``NOTICE``) live in this folder beside the modules that read them.
"""
