"""The synthetic TUSZ-like corpus for tests, CI and the demo: seeded EEG with learnable seizures (``signal``) written
with TUSZ's exact layout, formats and header quirks (``corpus``)."""
