"""Probability trace to seizure events: hysteresis and morphology, at one threshold or many, stitching windows."""
