"""The errors a user can cause and fix; the CLI prints them as one line, never a traceback."""

from __future__ import annotations

from inference.analyzer import WeightsError
from inference.settings import ConfigError
from ingest.sources import SourceError
from storage.db import StorageError

#: Exit code 2: fix the input or the config; 3: a service (database) is unavailable.
KNOWN_ERRORS = (ConfigError, SourceError, StorageError, WeightsError, FileNotFoundError)


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, StorageError):
        return 3
    return 2
