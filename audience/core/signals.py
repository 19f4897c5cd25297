"""Clean shutdown: SIGTERM (docker stop, Kubernetes) and Ctrl-C set a stop event.

The work in progress is finished (open tracks ended, labelled, stored or published, offsets
committed), then the command exits 0 after SIGTERM and 130 after Ctrl-C (SIGINT), the
shell's convention. No KeyboardInterrupt is raised, so no thread is left running native code
while the interpreter exits (which aborted with "terminate called without an active
exception").
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

#: exit code after Ctrl-C: 128 + SIGINT
INTERRUPTED_EXIT = 128 + signal.SIGINT


class StopEvent(threading.Event):
    """A stop event that remembers the signal that set it (None: set by code)."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None

    @property
    def exit_code(self) -> int:
        """0, or 130 when Ctrl-C stopped the work."""
        return INTERRUPTED_EXIT if self.signum == signal.SIGINT else 0


def install_sigterm(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM or Ctrl-C sets ``stop`` (and records which, on a StopEvent); the caller's
    loop ends cleanly. Only from the main thread (Python's rule for signal handlers).

    Returns a function that puts the previous handlers back: a library call (a test, the
    API) must not leave Ctrl-C bound to an event nobody waits on any more."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, _frame: Any) -> None:
        if isinstance(stop, StopEvent) and stop.signum is None:
            stop.signum = signum
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
