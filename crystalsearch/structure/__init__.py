"""Structure analysis: crystal graphs (``graph``), augmentations (``augment``), the structure fingerprint,
symmetry and prototype labels, composition descriptors, and what "the same material" means (``matching``).
"""
