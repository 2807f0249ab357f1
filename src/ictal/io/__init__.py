"""Files in and out: EDF recordings and their channels, TUSZ annotations, atomic writes, JSON outputs."""
