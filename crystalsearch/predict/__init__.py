"""Prediction: property heads (``predictor``), conformal intervals and the OOD flag (``conformal``), the stacked
point prediction (``stacking``) and fitting a heads folder's calibration (``calibration``).
"""
