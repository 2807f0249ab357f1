"""Errors that name the file (or config key) and say what to do."""

from __future__ import annotations

from pathlib import Path


class IctalError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


class EdfReadError(IctalError):
    """An EDF file that cannot be read or has no usable 19 channels."""

    def __init__(self, path: str | Path, problem: str, fix: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class AnnotationError(IctalError):
    """A malformed annotation file; names the file and, where known, the line."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {problem}")


class ConfigError(IctalError):
    """An invalid configuration; ``problems`` holds one line per problem (key, value, what is allowed)."""

    def __init__(self, source: str | Path, problems: list[str]) -> None:
        self.source = str(source)
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class OutputError(IctalError):
    """An output folder or file that cannot be written (read-only, not a folder, disk full)."""


class DiskFullError(OutputError):
    """No space left where an output was being written; ``path`` is the file, ``needed`` bytes if known."""

    def __init__(self, path: str | Path, needed: int | None = None) -> None:
        self.path = Path(path)
        self.needed = needed
        size = f" (this file needs about {_size(needed)})" if needed else ""
        super().__init__(
            f"{self.path}: no space left on the device holding {self.path.parent}{size}; free space there and run "
            "the same command again (what was written before is kept)"
        )


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}"
    return f"{n_bytes} bytes"
