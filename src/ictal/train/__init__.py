"""Training (system.md stage 8): ``trainer`` (the loop, ``Trainer``/``train``), ``losses``, ``optim`` (AdamW
groups, warm-up + cosine), ``precision``, ``distributed`` (torchrun/DDP), ``validation`` (``Validator``,
``FrameValidator``, early stopping), ``checkpoint`` (atomic save, ``load_model``), ``preflight``, ``progress``.
"""
