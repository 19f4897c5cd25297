"""`make services`: installs PostgreSQL where it is missing, starts it, and checks the tests' login.

The recipe runs for real, under `make`, with the system tools it would change (apt-get, sudo,
pg_ctlcluster, pg_isready, psql, id) replaced by shims on PATH that record how they were called
and play the machine's part: the shared server of this machine is never stopped. A second test
stops and restarts the real cluster, only where a disposable machine opts in.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")

# Real tools the recipe (and the apt-get shim) use around the shimmed ones.
REAL_TOOLS = ("ls", "sort", "tail", "sed", "seq", "sleep", "cat", "mkdir", "cp", "touch")

# Each shim appends "name args" to $SHIM_LOG. The server's state is files in $SHIM_STATE:
# `running` (pg_isready answers), `refuse` (psql's login fails). apt-get "installs" by
# writing the pg_ctlcluster shim and a cluster folder, and (as Debian's postinst does) starts it.
SHIMS = {
    "id": 'echo "$SHIM_UID"',
    "sudo": 'exec "$@"',
    "pg_isready": '[ -e "$SHIM_STATE/running" ] && { [ "$1" = -q ] || echo "accepting"; }',
    "psql": '[ ! -e "$SHIM_STATE/refuse" ]',
    "apt-get": """
case "$*" in *install*)
  mkdir -p "$SHIM_ETC/15/main"
  printf 'local all all peer\\nhost all all 127.0.0.1/32 scram-sha-256\\n' \\
    > "$SHIM_ETC/15/main/pg_hba.conf"
  cp "$SHIM_DIR/.pg_ctlcluster" "$SHIM_DIR/pg_ctlcluster"
  if [ -n "$SHIM_POSTINST_STARTS" ]; then touch "$SHIM_STATE/running"; fi;;
esac""",
}
PG_CTLCLUSTER = """
for a in "$@"; do case "$a" in
  status) [ -e "$SHIM_STATE/running" ]; exit;;
  start) touch "$SHIM_STATE/running"; exit;;
  reload) [ -e "$SHIM_STATE/running" ]; exit;;
esac; done"""


def _write(path: Path, body: str) -> None:
    name = path.name.lstrip(".")
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "$SHIM_LOG"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run(tmp_path: Path, *, uid: int, installed: bool, running: bool,
         postinst_starts: bool = True, refuse: bool = False,
         ) -> tuple[subprocess.CompletedProcess[str], list[str], Path]:
    shims, state, etc = tmp_path / "bin", tmp_path / "state", tmp_path / "etc-postgresql"
    shims.mkdir()
    state.mkdir()
    for tool in REAL_TOOLS:
        real = shutil.which(tool)
        assert real, tool
        (shims / tool).symlink_to(real)
    for name, body in SHIMS.items():
        _write(shims / name, body)
    _write(shims / ".pg_ctlcluster", PG_CTLCLUSTER)
    if installed:
        shutil.copy(shims / ".pg_ctlcluster", shims / "pg_ctlcluster")
        (etc / "15" / "main").mkdir(parents=True)
        (etc / "15" / "main" / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    if running:
        (state / "running").touch()
    if refuse:
        (state / "refuse").touch()
    log = tmp_path / "calls.log"
    log.touch()
    env = {"PATH": str(shims), "HOME": str(tmp_path), "SHIM_LOG": str(log),
           "SHIM_STATE": str(state), "SHIM_ETC": str(etc), "SHIM_DIR": str(shims),
           "SHIM_UID": str(uid), "SHIM_POSTINST_STARTS": "1" if postinst_starts else ""}
    assert MAKE is not None
    proc = subprocess.run([MAKE, "-s", "-C", str(ROOT), "services", f"PG_ETC={etc}"],
                          env=env, capture_output=True, text=True, timeout=60)
    return proc, log.read_text().splitlines(), etc


@pytest.mark.parametrize(
    ("uid", "installed", "running", "postinst_starts", "expected", "absent"),
    [
        # Running already: nothing installed, nothing started; the login is still checked.
        (0, True, True, True, ["pg_isready -q -h 127.0.0.1 -p 5432", "psql "],
         ["apt-get", "pg_ctlcluster", "sudo"]),
        # Installed, stopped, as root: started without sudo, no apt-get.
        (0, True, False, True,
         ["pg_ctlcluster 15 main status",
          "pg_ctlcluster --skip-systemctl-redirect 15 main start"], ["apt-get", "sudo"]),
        # Missing, not root: installed with sudo; Debian's postinst started it, so a reload
        # picks up the trust line.
        (1000, False, False, True,
         ["sudo apt-get update -qq", "sudo apt-get install -y -qq postgresql",
          "sudo pg_ctlcluster 15 main reload"], ["pg_ctlcluster --skip-systemctl-redirect"]),
        # Missing, root, on a machine where the postinst cannot start services (containers).
        (0, False, False, False,
         ["apt-get update -qq", "apt-get install -y -qq postgresql",
          "pg_ctlcluster --skip-systemctl-redirect 15 main start"], ["sudo"]),
    ],
    ids=["running", "stopped-root", "missing-sudo", "missing-root-no-postinst-start"],
)
def test_services_recipe(tmp_path: Path, uid: int, installed: bool, running: bool,
                         postinst_starts: bool, expected: list[str], absent: list[str]) -> None:
    proc, calls, etc = _run(tmp_path, uid=uid, installed=installed, running=running,
                            postinst_starts=postinst_starts)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    joined = "\n".join(calls)
    for call in expected:
        assert call in joined, (call, calls)
    for call in absent:
        assert call not in joined, (call, calls)
    hba = (etc / "15" / "main" / "pg_hba.conf").read_text().splitlines()
    # A fresh install lets the tests' user in (first matching line wins); an existing one is
    # left as its owner configured it.
    assert (hba[0] == "host all postgres 127.0.0.1/32 trust") is (not installed)
    assert "accepting" in proc.stdout


def test_services_refused_login_is_one_line(tmp_path: Path) -> None:
    proc, _, _ = _run(tmp_path, uid=0, installed=True, running=True, refuse=True)
    assert proc.returncode != 0
    message = [line for line in proc.stdout.splitlines() if "refuses" in line]
    assert len(message) == 1, proc.stdout
    assert "AUDIENCE_TEST_PG_ADMIN_URL" in message[0]


@pytest.mark.skipif(os.environ.get("AUDIENCE_TEST_MAY_STOP_PG") != "1",
                    reason="stops this machine's PostgreSQL: set AUDIENCE_TEST_MAY_STOP_PG=1 "
                           "on a disposable machine to run it")
def test_services_starts_a_stopped_server() -> None:
    """The real path: stop the local cluster, then `make services` brings it back."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        pytest.skip("no Debian PostgreSQL cluster to stop")
    if os.geteuid() != 0:
        pytest.skip("stopping the cluster needs root")
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    assert MAKE is not None
    subprocess.run(["pg_ctlcluster", version, "main", "stop"], check=True, timeout=60)
    try:
        proc = subprocess.run([MAKE, "-s", "-C", str(ROOT), "services"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0
    finally:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       capture_output=True, timeout=60)
