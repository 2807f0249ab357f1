"""Mamba2, the V3 temporal block, apart from the machinery that runs it: the layer and its bidirectional block
(``mamba2``), the chunked SSD scan that is the reference (``ssd``), numba's compiled CPU scan (``cpu_scan``,
``cpu_scan_kernels``) and the worker threads that share a layer's blocks of sequences (``parallel``)."""
