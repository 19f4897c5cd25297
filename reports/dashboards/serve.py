"""A local Superset for one machine, in its own virtualenv built from a pinned lock file.

Superset pins numpy<2 and SQLAlchemy<2, so it cannot share the pipeline's environment: it
gets ``.venv-superset`` (built from ``superset.lock`` on first use, rebuilt when the lock
changes) and is only ever run as a separate process, never imported. Its metadata lives in
SQLite under ``home`` (PostgreSQL in compose); the secret key is generated once and kept there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from audience.reports.dashboards.client import SupersetError
from audience.reports.dashboards.superset_hooks import KEY_ENV

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
LOCK = HERE / "superset.lock"
CONFIG = HERE / "superset_config.py"
DEFAULT_VENV = Path(".venv-superset")
DEFAULT_HOME = Path("out/superset")


@dataclass(frozen=True)
class Local:
    """Where a local Superset lives and how it is reached."""

    venv: Path = DEFAULT_VENV
    home: Path = DEFAULT_HOME
    host: str = "127.0.0.1"
    port: int = 8088
    metadata_url: str | None = None  #: Superset's own metadata DB; default SQLite in ``home``

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def role_key(self) -> str:
        """The role key (superset_hooks): DASHBOARDS_ROLE_KEY, else ``home/role_key``,
        generated once; `dashboards provision` and `grant` read the same file."""
        if os.environ.get(KEY_ENV):
            return os.environ[KEY_ENV]
        key_file = self.home / "role_key"
        if not key_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        return key_file.read_text().strip()

    def env(self) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        key_file = self.home / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(42))
            key_file.chmod(0o600)
        meta = self.metadata_url or f"sqlite:///{(self.home / 'superset.db').resolve()}"
        return {**os.environ, KEY_ENV: self.role_key(), "SUPERSET_CONFIG_PATH": str(CONFIG),
                "SUPERSET_SECRET_KEY": key_file.read_text().strip(),
                "SUPERSET_DATABASE_URL": meta, "SUPERSET_HOME": str(self.home.resolve()),
                "FLASK_APP": "superset"}


def _lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def ensure_env(local: Local, python: str | None = None) -> None:
    """Create or update the Superset virtualenv from the lock file (idempotent)."""
    stamp = local.venv / ".audience-lock"
    if stamp.exists() and stamp.read_text() == _lock_digest() and local.bin("superset").exists():
        return
    python = python or shutil.which("python3.11") or sys.executable
    log.info("building %s from %s (about 800 MB, a minute or two)", local.venv, LOCK.name)
    try:
        if not local.bin("python").exists():
            subprocess.run([python, "-m", "venv", str(local.venv)], check=True)
        pip = [str(local.bin("python")), "-m", "pip", "install", "-q",
               "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-r", str(LOCK)], check=True)
    except subprocess.CalledProcessError as exc:
        raise SupersetError(f"building {local.venv} failed ({exc}): check network access to "
                            "PyPI, or remove the folder and try again") from None
    stamp.write_text(_lock_digest())


def _superset(local: Local, *args: str) -> None:
    r = subprocess.run([str(local.bin("superset")), *args], env=local.env(),
                       capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise SupersetError(f"`superset {' '.join(args[:2])}` failed: {' | '.join(tail)}")


def prepare(local: Local, admin_user: str, admin_password: str) -> None:
    """Superset's metadata schema, its roles and an admin user (skipped when already done)."""
    stamp = local.home / ".initialized"
    if stamp.exists() and stamp.read_text() == _lock_digest():
        return
    log.info("initialising Superset metadata in %s", local.home)
    _superset(local, "db", "upgrade")
    _superset(local, "fab", "create-admin", "--username", admin_user, "--firstname", "Admin",
              "--lastname", "Audience", "--email", f"{admin_user}@users.invalid",
              "--password", admin_password)
    _superset(local, "init")
    stamp.write_text(_lock_digest())


def start(local: Local, workers: int = 1, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start gunicorn serving Superset; returns the process (wait with ``wait_healthy``)."""
    # The child inherits its own copy of the descriptor, so ours is closed straight away.
    with open(log_file or local.home / "superset.log", "ab") as out:
        return subprocess.Popen(
            [str(local.bin("gunicorn")), "--workers", str(workers), "--threads", "4",
             "--timeout", "120", "--bind", f"{local.host}:{local.port}",
             "superset.app:create_app()"],
            env=local.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None = None,
                 timeout_s: float = 120.0) -> None:
    """Block until Superset answers /health, or raise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SupersetError(f"Superset exited with code {proc.returncode} while starting: "
                                "see superset.log in its home folder", exit_code=3)
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SupersetError(f"Superset at {url} was not healthy after {timeout_s:.0f} s",
                        exit_code=3)
