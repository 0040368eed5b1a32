"""The CrystalCLR paper's Table 1, as reference data for the evaluation report.

T. Koker, K. Quigley, W. Spaeth, N. C. Frey, L. Li, "Graph Contrastive Learning for Materials", NeurIPS 2022
AI4Mat workshop, Table 1: test MAE, mean and standard deviation over five seeds. Melting temperature is given
in °C there; as a mean absolute error it equals the value in K. The paper's data: 90,160 Materials Project
structures for pretraining, 3,014 melting temperatures (MatWeb), 5,540 AFLOW thermal conductivities and 13,121
Materials Project bulk moduli. The paper reports no mean-predictor row.
"""

from __future__ import annotations

from typing import Final

PAPER_SETUP: Final = "90k Materials Project structures, batch 512, Adam 1e-4, 5000 epochs on GPU"

# half -> method -> property -> (MAE mean, MAE std); methods and properties as in ``table1.json``.
PAPER_TABLE1: Final[dict[str, dict[str, dict[str, tuple[float, float]]]]] = {
    "random_forest": {
        "sitestats": {"melting_temperature": (415.7, 2.2), "thermal_conductivity": (5.41, 0.02),
                      "bulk_modulus": (43.02, 0.11)},
        "sine_coulomb": {"melting_temperature": (336.7, 2.2), "thermal_conductivity": (3.50, 0.03),
                         "bulk_modulus": (25.74, 0.13)},
        "magpie": {"melting_temperature": (106.1, 1.6), "thermal_conductivity": (3.39, 0.03),
                   "bulk_modulus": (17.64, 0.07)},
        "crystalclr": {"melting_temperature": (161.7, 2.5), "thermal_conductivity": (3.73, 0.03),
                       "bulk_modulus": (21.98, 0.11)},
        "crystalclr_cs": {"melting_temperature": (156.7, 1.8), "thermal_conductivity": (3.51, 0.03),
                          "bulk_modulus": (20.79, 0.07)},
    },
    "finetune": {
        "random": {"melting_temperature": (119.9, 2.0), "thermal_conductivity": (3.08, 0.16),
                   "bulk_modulus": (13.13, 0.25)},
        "crystalclr": {"melting_temperature": (106.8, 6.0), "thermal_conductivity": (3.04, 0.33),
                       "bulk_modulus": (12.89, 0.19)},
        "crystalclr_cs": {"melting_temperature": (102.8, 2.6), "thermal_conductivity": (3.11, 0.13),
                          "bulk_modulus": (12.95, 0.28)},
    },
}  # fmt: skip


def paper_mae(half: str, method: str, prop: str) -> tuple[float, float] | None:
    """The paper's (mean, std) test MAE of ``method`` on ``prop``, or ``None`` where the paper has no such row."""
    return PAPER_TABLE1.get(half, {}).get(method, {}).get(prop)
