"""The one error base: every error a user can cause or fix carries its exit code.

The CLI prints such an error as one line and exits with ``exit_code``; nothing else
decides exit codes. 2: fix the input or the config. 3: a service (database, broker,
Superset) is unavailable.
"""

from __future__ import annotations

INPUT_EXIT = 2
SERVICE_EXIT = 3


class AudienceError(Exception):
    """An error with a one-line message saying what was wrong and what to do."""

    exit_code: int = INPUT_EXIT

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(AudienceError):
    """Bad input or configuration: the user must change something (exit 2)."""


class ServiceError(AudienceError):
    """A service the command needs is unavailable (exit 3)."""

    exit_code = SERVICE_EXIT


class ConfigError(InputError):
    """A configuration file or value is wrong; the message says which and how to fix it."""


class MissingFileError(InputError, FileNotFoundError):
    """A file or folder the user named (or the package ships) does not exist."""


class WeightsError(InputError):
    """Model weights are missing, unreadable or do not match their recorded sha256."""
