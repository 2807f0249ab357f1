"""The ``ictal`` command line: one module per sub-command, each parsing options and printing over the Python API."""
