"""Atomic file writes: a temporary file beside the target, flushed to disk, then renamed over it.

A reader (or a resumed run) therefore sees either the old file or the complete new one, never half of it,
whatever happens meanwhile (kill, disk full, power loss). Temporary names carry host and pid, so a later run
can tell a dead writer's leftovers from a live one's.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ictal.errors import DiskFullError, OutputError


def tmp_prefix(name: str) -> str:
    """The prefix of the temporary files written for target ``name``: ``.<name>.<host>-<pid>.``."""
    return f".{name}.{socket.gethostname()}-{os.getpid()}."


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], object], size_hint: int | None = None) -> Path:
    """Write ``path`` through ``write(fh)`` (a binary file handle), atomically; returns the path.

    The file gets the permissions a plain ``open`` would give (mkstemp's 0600 would hide shared outputs from
    other users). ``size_hint`` (bytes) is what a full disk is told the file needs.

    Raises:
        DiskFullError: no space left (or a quota reached) on the device; nothing of the file is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(path, size_hint) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends as given) to ``path`` atomically."""
    data = text.encode("utf-8")
    return write_atomic(path, lambda fh: fh.write(data), size_hint=len(data))


def check_writable(path: str | Path, what: str, *, folder: bool = True) -> Path:
    """Check, before any work, that ``path`` (a folder, or with ``folder=False`` a file) can be written.

    Nothing is created: a temporary file is made and removed in ``path`` or, where it does not exist yet, in
    its nearest existing parent.

    Args:
        what: the option or key the path came from (``--out``, ``data.cache_dir``), for the message.

    Raises:
        OutputError: a parent is a file, or writing there fails (read-only, permissions, disk full).
    """
    path = Path(path)
    target = path if folder else path.parent
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{path}: {probe} is a file, not a folder; give another {what}")
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder; give another {what}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ictal-write-check.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {probe} ({exc.strerror or exc}); give a writable {what}") from None
    return path
