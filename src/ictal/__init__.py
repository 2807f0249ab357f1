"""ictal: clinical EEG seizure detection, from EDF to reviewed events.

Stages follow the data: ``io`` (EDF, annotations) -> ``signal`` (preprocessing) -> ``data`` (corpus, cache,
windows) -> ``models`` -> ``train`` -> ``post`` (stitching, events) -> ``scoring`` -> ``infer`` -> ``report``.
"""

__version__ = "0.1.0"
