"""A PostgreSQL cluster of the test's own (initdb + pg_ctl under a temporary folder), for faults
the shared server must never see: stopped, restarted, frozen (SIGSTOP)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from audience.core.local_broker import free_port

__all__ = ["PgCluster", "pg_cluster"]


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"no PostgreSQL server binaries ({name}) under /usr/lib/postgresql: install "
                    "the postgresql package", pytrace=False)
    return found[-1]


class PgCluster:
    """One postmaster on 127.0.0.1:port, trust auth, data and socket under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._user = "postgres" if os.geteuid() == 0 else None  # initdb refuses root
        root.mkdir(parents=True, exist_ok=True)
        if self._user:
            pw = pwd.getpwnam(self._user)
            os.chown(root, pw.pw_uid, pw.pw_gid)
            os.chmod(root.parent, 0o755)
        self._run([_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                   "--no-sync", "-E", "UTF8"])

    def _run(self, args: list[str]) -> None:
        cmd = ["runuser", "-u", self._user, "--", *args] if self._user else args
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode:
            pytest.fail(f"{' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}",
                        pytrace=False)

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off")
        self._run([_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                   "-t", "60", "-o", opts, "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def pids(self) -> list[int]:
        """The postmaster and every process it forked (backends, checkpointer, ...)."""
        main = self.postmaster_pid()
        out = [main]
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == main:
                out.append(int(Path(stat).parent.name))
        return out

    def signal_all(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def freeze(self) -> None:
        self.signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal_all(signal.SIGCONT)


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    # Not under pytest's tmp folder: that one is private to root, the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="audience-pg-"))
    try:
        cluster = PgCluster(root / "cluster")
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.thaw()
            subprocess.run(["runuser", "-u", "postgres", "--", _bin("pg_ctl"), "-D",
                            str(cluster.data), "-m", "immediate", "-w", "stop"]
                           if cluster._user else [_bin("pg_ctl"), "-D", str(cluster.data),
                                                   "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
