"""The benches' defaults a new user meets first: no broker named starts a local one, and a
new, empty database is migrated before it is measured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from audience.core.errors import AudienceError
from audience.storage.bench import bench_database
from audience.storage.db import current_revision, head_revision, migrate, open_engine

ROOT = Path(__file__).resolve().parents[1]
UTK = ROOT.parent / "shared" / "datasets" / "utkface" / "crop_part1"


def test_bench_database_migrates_a_new_database_only(db_url: str) -> None:
    engine = bench_database(db_url)
    try:
        assert current_revision(engine) == head_revision()
        assert "visits" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_bench_database_leaves_a_used_database_to_its_operator(db_url: str) -> None:
    migrate(db_url, revision="0001")  # tables of an older release: not ours to upgrade here
    with pytest.raises(AudienceError, match="at revision 0001.*audience db upgrade"):
        bench_database(db_url)
    engine = open_engine(db_url)
    try:
        assert current_revision(engine) == "0001"
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.skipif(not UTK.is_dir(), reason=f"no UTKFace chips at {UTK}")
def test_bench_workers_without_a_broker_or_a_migrated_database(tmp_path: Path) -> None:
    """No --bootstrap-servers, no broker running, a database file that does not exist yet:
    the bench starts tansu, migrates the file and prints its table."""
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    out = subprocess.run(
        [sys.executable, "-m", "audience", "bench", "workers", "--workers", "2,1",
         "--tracks", "300", "--faces", str(UTK), "--db", db],
        capture_output=True, text=True, timeout=420, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "started a local Kafka-protocol broker" in out.stderr
    assert "was empty: migrated it to revision" in out.stderr
    lines = out.stdout.splitlines()
    assert "broker: local tansu" in lines[0]
    assert [ln.split(":")[0] for ln in lines[1:3]] == ["W=2", "W=1"]
    assert all("300 rows for 300 tracks" in ln for ln in lines[1:3])
    assert lines[3].startswith("sqlite batched upserts:")
