"""The detectors: V3 (TCN, Mamba2 node and edge streams, learned graph), the line-length baseline, checkpoints."""
