"""Identity: is a structure a known material of a catalog (``known``), and which of a batch are unique and
novel (``novelty``) — under the Materials Project's criterion (formula, space group, StructureMatcher).
"""
