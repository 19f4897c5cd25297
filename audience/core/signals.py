"""Clean shutdown: SIGTERM (docker stop, Kubernetes) and Ctrl-C set a stop event."""

from __future__ import annotations

import signal
import threading


def install_sigterm(stop: threading.Event) -> None:
    """SIGTERM (docker stop, Kubernetes) or Ctrl-C ends the stream cleanly: the open tracks
    are ended and published, the producer flushed, then exit 0."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
