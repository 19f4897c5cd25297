"""Every service refuses to start with a known placeholder secret (.env.example's change-me,
an empty value, Superset's documented default keys), with one line naming the variable to set
and without echoing the value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audience.cli import app
from audience.core.placeholders import PLACEHOLDERS

ROOT = Path(__file__).resolve().parents[1]
SUPERSET_DEFAULT = "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET"  # Superset's documented default
PG = f"postgresql://audience:{SUPERSET_DEFAULT}@127.0.0.1:1/audience"
DEAD_BROKER = "127.0.0.1:1"


@pytest.mark.parametrize(("service", "args", "variable"), [
    ("migrate", ["db", "upgrade", "--db", PG], "POSTGRES_PASSWORD"),
    ("db check", ["db", "check", "--db", PG], "POSTGRES_PASSWORD"),
    ("infer", ["infer", "--db", PG, "--bootstrap-servers", DEAD_BROKER, "--metrics-port", "0"],
     "POSTGRES_PASSWORD"),
    ("purge", ["purge", "--older-than", "90d", "--db", PG], "POSTGRES_PASSWORD"),
    ("run", ["run", "--source", str(ROOT / "ingest/assets/face-demographics-walking-and-pause"
                                         ".gif"), "--db", PG], "POSTGRES_PASSWORD"),
    ("camera", ["camera", "--source", "rtsp://viewer:change-me@camera.local:554/s",
                "--bootstrap-servers", DEAD_BROKER, "--metrics-port", "0"],
     "CAMERA_<NAME>_SOURCE"),
    ("superset-provision", ["dashboards", "provision", "--password", "change-me", "--db", PG],
     "SUPERSET_ADMIN_PASSWORD"),
    ("dashboards serve", ["dashboards", "serve", "--admin-password", "admin", "--venv",
                          "/nonexistent/venv"], "SUPERSET_ADMIN_PASSWORD"),
])
def test_audience_services_refuse_placeholders(service: str, args: list[str],
                                               variable: str) -> None:
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 2, (service, done.output)
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to start"), done.output
    assert variable in lines[0] and SUPERSET_DEFAULT not in lines[0]


def _superset_config(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SUPERSET_")}
    # the image copies the hooks next to the config
    base["PYTHONPATH"] = str(ROOT / "reports" / "dashboards")
    return subprocess.run([sys.executable, str(ROOT / "deploy/superset/superset_config.py")],
                          env=base | env, capture_output=True, text=True, timeout=30)


GOOD_KEY = "x7Gf0p2LqV9s3mZ1rT8yK4wN6bC5dH0jQ2eU9iO7aS3l"
GOOD_DB = "postgresql://audience:0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c@postgres:5432/superset"


@pytest.mark.parametrize(("env", "variable"), [
    ({"SUPERSET_SECRET_KEY": "change-me", "SUPERSET_DATABASE_URL": GOOD_DB},
     "SUPERSET_SECRET_KEY"),
    ({"SUPERSET_SECRET_KEY": "", "SUPERSET_DATABASE_URL": GOOD_DB}, "SUPERSET_SECRET_KEY"),
    ({"SUPERSET_SECRET_KEY": SUPERSET_DEFAULT, "SUPERSET_DATABASE_URL": GOOD_DB},
     "SUPERSET_SECRET_KEY"),
    ({"SUPERSET_SECRET_KEY": "thisISaSECRET_1234", "SUPERSET_DATABASE_URL": GOOD_DB},
     "SUPERSET_SECRET_KEY"),
    ({"SUPERSET_SECRET_KEY": GOOD_KEY, "SUPERSET_DATABASE_URL": GOOD_DB,
      "SUPERSET_ADMIN_PASSWORD": "change-me"}, "SUPERSET_ADMIN_PASSWORD"),
    ({"SUPERSET_SECRET_KEY": GOOD_KEY, "SUPERSET_DATABASE_URL": GOOD_DB,
      "SUPERSET_ADMIN_PASSWORD": "admin"}, "SUPERSET_ADMIN_PASSWORD"),
    ({"SUPERSET_SECRET_KEY": GOOD_KEY,
      "SUPERSET_DATABASE_URL": "postgresql://audience:change-me@postgres:5432/superset"},
     "POSTGRES_PASSWORD"),
], ids=["key-change-me", "key-empty", "key-superset-default", "key-old-default",
        "admin-change-me", "admin-admin", "db-change-me"])
def test_superset_and_superset_init_refuse_placeholders(env: dict[str, str],
                                                        variable: str) -> None:
    """deploy/superset/superset_config.py: read by `superset` and by superset-init's
    `superset db upgrade` / `fab create-admin` before anything else."""
    done = _superset_config(**env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and "refusing to start" in lines[0]


def test_superset_config_accepts_real_secrets() -> None:
    done = _superset_config(SUPERSET_SECRET_KEY=GOOD_KEY, SUPERSET_DATABASE_URL=GOOD_DB,
                            SUPERSET_ADMIN_PASSWORD="a2f9c1e07b5d")
    assert done.returncode == 0, done.stderr


def test_superset_config_knows_the_same_placeholders() -> None:
    text = (ROOT / "deploy/superset/superset_config.py").read_text()
    scope: dict[str, object] = {}
    exec(text.split("\n\ndef _refuse")[0], scope)  # noqa: S102 - our own file, the list only
    assert scope["_PLACEHOLDERS"] == set(PLACEHOLDERS)


@pytest.mark.parametrize("password", ["change-me", ""])
def test_postgres_init_refuses_placeholder(password: str, tmp_path: Path) -> None:
    (tmp_path / "psql").write_text("#!/bin/sh\ntouch \"$0.ran\"\n")
    (tmp_path / "psql").chmod(0o755)
    done = subprocess.run(["sh", str(ROOT / "deploy/postgres/10-superset-db.sh")],
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin", "POSTGRES_USER": "audience",
                               "POSTGRES_DB": "audience", "POSTGRES_PASSWORD": password},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "POSTGRES_PASSWORD" in done.stderr
    assert not (tmp_path / "psql.ran").exists()


def test_env_example_secrets_are_all_refused() -> None:
    """What a deployment that copied .env.example unchanged gets: refusals, not a service."""
    values = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                  if "=" in line and not line.lstrip().startswith("#"))
    for key in ("POSTGRES_PASSWORD", "WRITER_DB_PASSWORD", "SUPERSET_SECRET_KEY",
                "SUPERSET_ADMIN_PASSWORD"):
        assert values[key].strip() in PLACEHOLDERS, key
