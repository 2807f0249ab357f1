"""Training: ``trainer`` (the loop, ``Trainer``/``train``), ``losses``, ``optim`` (AdamW groups, warm-up +
cosine), ``precision``, ``distributed`` (torchrun/DDP), ``validation`` (``Validator``, ``FrameValidator``, early
stopping), ``checkpoint`` (generator states for resuming; the file format is ``ictal.models.checkpoint``),
``preflight``, ``progress``.
"""
