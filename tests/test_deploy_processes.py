"""docker-compose.yml's pipeline services, run as plain processes on this machine.

There is no Docker engine here, so each service's command runs as `python -m audience
<command>` with the environment the compose file gives it (parsed from `docker compose config`).
Only the addresses change: kafka:9092 becomes a tansu broker, postgres:5432 a fresh test
database (the owner's URL for migrate, the writer role's for infer and purge), port 9400 a free
port, the RTSP source the bundled clip. That proves the wiring: the variable names, the
commands, the mounted camera config, the topic job's settings and the healthcheck command all
work together with the real workers.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import compose
import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from kafka_broker import Tansu, free_port
from sqlalchemy import func, make_url, select

from audience.storage.db import open_engine
from audience.storage.roles import drop_writer
from audience.storage.schema import VisitRow

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "ingest" / "assets" / "face-demographics-walking-and-pause.gif"
PY = [sys.executable, "-m", "audience"]

pytestmark = [pytest.mark.slow, pytest.mark.postgres,
              pytest.mark.parametrize("db_url", ["postgres"], indirect=True)]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = tmp_path_factory.mktemp("compose") / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    binary = Path(compose.__file__).parent / "docker-compose"
    res = subprocess.run([str(binary), "--env-file", str(env), "-f",
                          str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(res.stdout)["services"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tansu = Tansu(tmp_path_factory.mktemp("tansu"))
    tansu.start()
    yield tansu.bootstrap
    tansu.stop()


class Local:
    """Maps the compose network's addresses to this machine's."""

    def __init__(self, broker: str, db_url: str) -> None:
        self.broker, self.db_url, self.metrics_port = broker, db_url, free_port()
        # The writer login `migrate` creates; roles are per cluster, so one per database.
        url = make_url(db_url)
        self.writer = f"w_{url.database}"[:60]
        self.writer_url = url.set(username=self.writer, password=secrets.token_hex(16)
                                  ).render_as_string(hide_password=False)

    def env(self, svc: dict[str, Any]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not (k.startswith("AUDIENCE_") or k == "DATABASE_URL")}
        out = {}
        for key, value in svc.get("environment", {}).items():
            value = value.replace("kafka:9092", self.broker)
            pg = re.fullmatch(r"postgresql://([^:@]+)[^@]*@postgres:5432/audience", value)
            if pg:
                value = self.writer_url if pg[1] == "audience_writer" else self.db_url
            if key == "AUDIENCE_KAFKA__METRICS_PORT":
                value = str(self.metrics_port)
            if key == "AUDIENCE_CAMERA__SOURCE":
                value = str(CLIP)
            out[key] = value
        return {**base, **out}

    @staticmethod
    def argv(svc: dict[str, Any]) -> list[str]:
        """The command, with container paths of bind mounts mapped to the repository."""
        args = []
        for arg in svc["command"]:
            for vol in svc.get("volumes", []):
                if vol["type"] == "bind" and arg.startswith(vol["target"] + "/"):
                    arg = vol["source"] + arg.removeprefix(vol["target"])
            args.append(arg)
        return args


def _visits(db_url: str) -> int:
    engine = open_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(VisitRow)).scalar_one()
    finally:
        engine.dispose()


def _wait(cond: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen,
          log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    pytest.fail(f"no {what} within {timeout_s} s:\n{log.read_text()[-3000:]}", pytrace=False)


def _create_topics_like_the_topic_job(svc: dict[str, Any], broker: str) -> None:
    """What deploy/kafka/create-topics.sh does, from the same environment (the broker's CLI
    scripts are Java, not available here)."""
    env = svc["environment"]
    assert svc["volumes"][0]["source"].endswith("deploy/kafka/create-topics.sh")
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        admin.create_topics([NewTopic(t, int(env["PARTITIONS"]), 1,
                                      topic_configs={"retention.ms": keep})
                             for t, keep in ((env["TRACKS_TOPIC"], env["RETENTION_MS"]),
                                             (env["DLQ_TOPIC"], env["DLQ_RETENTION_MS"]))])
    finally:
        admin.close()


def test_compose_services_run_as_processes(services: dict[str, Any], broker: str, db_url: str,
                                           tmp_path: Path) -> None:
    local = Local(broker, db_url)
    try:
        _run_the_services(services, broker, db_url, tmp_path, local)
    finally:
        owner = open_engine(db_url)
        drop_writer(owner, local.writer)
        owner.dispose()


def _run_the_services(services: dict[str, Any], broker: str, db_url: str, tmp_path: Path,
                      local: Local) -> None:
    # infer and purge log in as the writer role, never as the owner
    for name in ("infer", "purge"):
        assert local.env(services[name])["DATABASE_URL"] == local.writer_url, name

    # 1. migrate: one-shot, must exit 0
    mig = services["migrate"]
    res = subprocess.run(PY + local.argv(mig), env=local.env(mig), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "(latest)" in res.stdout

    # 2. kafka-topics: the topics with the job's partitions and retention
    _create_topics_like_the_topic_job(services["kafka-topics"], broker)

    # 3. one inference worker, healthy according to the compose healthcheck command
    infer = services["infer"]
    log = tmp_path / "infer.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(PY + local.argv(infer), env=local.env(infer), cwd=tmp_path,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        check = [sys.executable if a == "python" else a.replace("9400", str(local.metrics_port))
                 for a in infer["healthcheck"]["test"][1:]]

        def healthy() -> bool:
            return subprocess.run(check, capture_output=True, timeout=10).returncode == 0

        _wait(healthy, 90, "healthy inference worker (compose healthcheck)", worker, log)

        # 4. one camera worker on the bundled clip: publishes its 3 tracks and exits 0
        cam = services["camera-entrance"]
        cam_env = local.env(cam) | {"AUDIENCE_KAFKA__METRICS_PORT": str(free_port())}
        res = subprocess.run(PY + local.argv(cam), env=cam_env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, res.stderr
        assert "3 tracks published to audience.tracks" in res.stdout

        _wait(lambda: _visits(db_url) >= 3, 90, "3 visits in PostgreSQL", worker, log)
        worker.send_signal(signal.SIGTERM)  # what `docker compose stop` sends
        assert worker.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert _visits(db_url) == 3

    # 5. purge: the command inside the service's daily loop
    loop = services["purge"]["command"][0]
    inner = shlex.split(re.search(r"do (audience purge [^;]+);", loop)[1])[1:]
    res = subprocess.run(PY + inner, env=local.env(services["purge"]), cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("deleted 0 visits")  # today's visits are inside 90 days
