"""Output files written whole or not at all: a temporary file beside the target, then rename.

A full disk, a crash or Ctrl-C midway leaves the previous file (or none), never a 0-byte or
half-written report; a target that is a folder or in an unwritable place is one line, exit 2.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audience.core.errors import InputError


class OutputError(InputError):
    """An output file cannot be written where the user asked: what and why, in one line."""


def _fail(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {path} ({exc.strerror or type(exc).__name__}): choose "
                       "a writable file path with free space")


def check_output(path: str | Path) -> Path:
    """Refuse, before any work is done, a target that is a folder or in a place where no
    file can be made (OutputError, exit 2); creates the missing parent folders."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; name a file, e.g. "
                          f"{path / 'report.html'}")
    probe = _temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        raise _fail(path, exc) from None
    return path


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name[:200]}.{secrets.token_hex(4)}.tmp")


def atomic_write(path: str | Path, write: Callable[[Any], None],
                 newline: str | None = None, binary: bool = False) -> Path:
    """Call ``write(fh)`` on a temporary text file (UTF-8) in the target's folder, then
    rename it over ``path``. Returns ``path``. Raises OutputError (exit 2) on any OSError."""
    path = check_output(path)
    tmp = _temp_name(path)
    try:
        # os.open with 0o666: the umask applies, as for a plain open()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with (open(fd, "wb") if binary
              else open(fd, "w", encoding="utf-8", newline=newline)) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _fail(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """``path.write_text(text)``, whole or not at all (see :func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """``path.write_bytes(data)``, whole or not at all (see :func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(data), binary=True)
