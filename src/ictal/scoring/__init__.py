"""Scoring events against references: the NEDC v6 scorers, SzCORE, operating points, calibration."""
