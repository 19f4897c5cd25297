"""Clean shutdown against a live local stream: SIGTERM and Ctrl-C (SIGINT)
end the open tracks, label, store and exit 0 / 130; a camera worker waiting on a dead stream
exits within a couple of seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka_broker import free_port, kafka_broker  # noqa: F401
from mjpeg_server import mjpeg_stream
from sqlalchemy import text

from audience.core.errors import ServiceError
from audience.core.local_broker import wait_for_log
from audience.storage.db import open_engine

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "audience", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _wait_for(log: Path, needle: str, proc: subprocess.Popen, timeout_s: float) -> None:
    try:
        wait_for_log(log, needle, proc, timeout_s, name="audience")
    except ServiceError:
        pytest.fail(f"no {needle!r} within {timeout_s} s:\n"
                    f"{log.read_text(errors='replace')[-3000:]}", pytrace=False)


def _visits(url: str) -> int:
    engine = open_engine(url, create=False)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM visits")).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_embedded_run_on_a_live_stream_stores_the_visits_it_saw(
        tmp_path: Path, sig: int, code: int) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    log = tmp_path / "run.log"
    with mjpeg_stream() as stream:
        proc = _start(["run", "--source", stream, "--db", url, "--no-progress",
                       "--store", "live", "--camera", "door"], log)
        _wait_for(log, "receiving frames", proc, 60)
        time.sleep(4)  # about one pass of the clip: people in view, tracks open
        t0 = time.monotonic()
        proc.send_signal(sig)
        rc = proc.wait(30)
    out = log.read_text(errors="replace")
    assert rc == code, out[-3000:]
    assert time.monotonic() - t0 < 20
    assert "Traceback" not in out and "terminate called" not in out, out[-3000:]
    stored = _visits(url)
    assert stored >= 1, out[-3000:]  # before: 0 stored, exit -15 / -6
    assert f"{stored} visits stored for store live" in out


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_camera_worker_on_a_dead_stream_stops_at_once(
        kafka_broker: str, tmp_path: Path, sig: int, code: int) -> None:  # noqa: F811
    dead = f"http://127.0.0.1:{free_port()}/stream.mjpg"  # nothing listens there
    log = tmp_path / "camera.log"
    proc = _start(["camera", "--source", dead, "--bootstrap-servers", kafka_broker,
                   "--metrics-port", "0"], log)
    # wait for the second backoff (2 s): the worker is asleep in it
    _wait_for(log, "(attempt 2)", proc, 60)
    t0 = time.monotonic()
    proc.send_signal(sig)
    rc = proc.wait(30)
    elapsed = time.monotonic() - t0
    out = log.read_text(errors="replace")
    assert rc == code, out[-3000:]
    assert elapsed < 2.5, f"took {elapsed:.1f} s to stop"  # before: still alive after 40 s
    assert "Traceback" not in out


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_inference_worker_stops_cleanly(kafka_broker: str, tmp_path: Path,  # noqa: F811
                                        sig: int, code: int) -> None:
    from audience.storage.db import migrate

    url = f"sqlite:///{tmp_path / 'infer.db'}"
    migrate(url)
    log = tmp_path / "infer.log"
    tag = os.urandom(4).hex()
    proc = _start(["infer", "--bootstrap-servers", kafka_broker, "--db", url,
                   "--metrics-port", "0", "--group-id", f"g-{tag}"], log)
    _wait_for(log, "inference worker in group", proc, 60)
    proc.send_signal(sig)
    rc = proc.wait(30)
    out = log.read_text(errors="replace")
    assert rc == code, out[-3000:]
    assert "inference worker stopped: 0 visits stored" in out and "Traceback" not in out


@pytest.mark.parametrize(("closing", "exc"), [
    (True, AttributeError("'NoneType' object has no attribute 'recv'")),  # both seen in CI
    (True, ValueError("generator already executing")),
    (False, ConnectionResetError("Connection reset by peer")),
], ids=["read-after-close", "task-closed-while-running", "not-closing"])
def test_kafka_client_close_races_leave_one_line_not_a_traceback(
        caplog: pytest.LogCaptureFixture, closing: bool, exc: Exception) -> None:
    """kafka-python 3 closes connections on our thread while its IO thread runs them; a
    traceback it logs during our close() becomes one warning line. Outside a close it stays."""
    import contextlib
    import logging

    import kafka.net.selector  # noqa: F401 - the loggers exist once the client is imported

    from audience.core.kafka_io import closing_quietly

    logger = logging.getLogger("kafka.net.selector")
    with caplog.at_level(logging.INFO), \
            (closing_quietly() if closing else contextlib.nullcontext()):
        try:
            raise exc
        except Exception:  # noqa: BLE001 - logged exactly as the library does
            logger.exception("Error closing coroutine for cancelled task")
    (record,) = [r for r in caplog.records if r.name == "kafka.net.selector"]
    assert (record.exc_info is None) is closing
    assert record.levelname == ("WARNING" if closing else "ERROR")
    assert str(exc) in caplog.text


def test_a_signal_sets_the_stop_event_and_the_handlers_are_put_back() -> None:
    from audience.core.signals import StopEvent, install_sigterm

    before = signal.getsignal(signal.SIGINT)
    stop = StopEvent()
    restore = install_sigterm(stop)
    try:
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the event is set
        assert stop.wait(5) and stop.signum == signal.SIGINT and stop.exit_code == 130
    finally:
        restore()
    assert signal.getsignal(signal.SIGINT) is before
