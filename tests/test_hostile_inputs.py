"""Hostile but fair inputs: each is one line and exit 2 or 3, never a
traceback, never a secret echoed, never a half-written file."""

from __future__ import annotations

import errno
import gzip
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from audience.cli import app
from audience.core.ids import check_id, is_valid_id
from audience.core.visit import Visit
from audience.reports.cli import report_file_name
from audience.storage.db import migrate, open_engine
from audience.storage.sink import VisitSink

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "ingest" / "assets" / "face-demographics-walking-and-pause.gif"
SECRET = "S3cretPW"


def fake_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny IDAT: a few dozen bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def _db(tmp: Path) -> str:
    url = f"sqlite:///{tmp / 'audience.db'}"
    migrate(url)
    return url


def _fer(tmp: Path, body: str, name: str = "fer.csv") -> str:
    (tmp / name).write_text(body)
    return str(tmp / name)


def _folder(tmp: Path, files: dict[str, bytes]) -> str:
    d = tmp / "frames"
    d.mkdir()
    for name, data in files.items():
        (d / name).write_bytes(data)
    return str(d)


_ROW = "0," + " ".join(["128"] * 48 * 48) + ",PrivateTest\n"
Setup = Callable[[Path], tuple[list[str], dict[str, str]]]

# (id, setup -> (args, env), exit code, text in the one line)
CASES: list[tuple[str, Setup, int, str]] = [
    ("yaml not UTF-8", lambda t: (["run", "--config", str(_write(t / "c.yaml", b"camera:\n  "
                                                                  b"store: \xff\xfe\n"))], {}),
     2, "not UTF-8"),
    ("AUDIENCE_CAMERA=notjson", lambda t: (["run", "--source", str(CLIP)],
                                           {"AUDIENCE_CAMERA": "notjson"}),
     2, "AUDIENCE_CAMERA is not valid JSON"),
    ("DB URL port not a number", lambda t: (["db", "upgrade", "--db",
                                             f"postgresql://u:{SECRET}@h:abc/db"], {}),
     2, "invalid database URL"),
    ("DB URL typo", lambda t: (["db", "upgrade", "--db", f"postgresql//u:{SECRET}@h/db"], {}),
     2, "invalid database URL"),
    ("--superset-db typo", lambda t: (["dashboards", "provision", "--db", _db(t),
                                       "--superset-db", f"postgresql//u:{SECRET}@h/db",
                                       "--password", "x", "--superset-url",
                                       "http://127.0.0.1:9"], {}), 2, "invalid database URL"),
    ("report --since 9999999d", lambda t: (["report", "--store", "s", "--since", "9999999d",
                                            "--db", _db(t)], {}), 2, "before the year 1"),
    ("segments --since 9999999d", lambda t: (["segments", "--by", "gender", "--store", "s",
                                              "--since", "9999999d", "--db", _db(t)], {}),
     2, "before the year 1"),
    ("purge --older-than 9999999d", lambda t: (["purge", "--older-than", "9999999d", "--db",
                                                _db(t)], {}), 2, "longer than 1000 years"),
    ("report --out a folder", lambda t: (["report", "--store", "store-1", "--db", _seeded(t),
                                          "--k", "2", "--out", str(t)], {}), 2, "is a folder"),
    ("report --out unwritable", lambda t: (["report", "--store", "store-1", "--db", _seeded(t),
                                            "--k", "2", "--out", "/proc/audience/r.html"], {}),
     2, "cannot write /proc/audience/r.html"),
    ("segments --csv a folder", lambda t: (["segments", "--by", "gender", "--store", "store-1",
                                            "--db", _seeded(t), "--k", "2", "--csv", str(t)],
                                           {}), 2, "is a folder"),
    ("segments --csv unwritable", lambda t: (["segments", "--by", "gender", "--store",
                                              "store-1", "--db", _seeded(t), "--k", "2",
                                              "--csv", "/proc/s.csv"], {}), 2, "cannot write"),
    # as root a chmod'ed folder is writable: /proc and /sys are read-only for everyone
    ("new SQLite file, folder cannot be made", lambda t: (["db", "upgrade", "--db",
                                                           "sqlite:////proc/audience/new.db"],
                                                          {}), 3, "cannot create the folder"),
    ("new SQLite file, read-only folder", lambda t: (["db", "upgrade", "--db",
                                                      "sqlite:////sys/new.db"], {}),
     3, "cannot reach the database"),
    ("fer2013 junk rows", lambda t: (["evaluate", "fer2013", "--csv",
                                      _fer(t, "emotion,pixels,Usage\n1,2\nx,y,z\n")], {}),
     2, "no usable rows"),
    ("fer2013 wrong header", lambda t: (["evaluate", "fer2013", "--csv",
                                         _fer(t, "a,b,c\n" + _ROW)], {}),
     2, "expected the header"),
    ("fer2013 unknown split", lambda t: (["evaluate", "fer2013", "--csv",
                                          _fer(t, "emotion,pixels,Usage\n" + _ROW),
                                          "--split", "Nope"], {}), 2, "no usable rows"),
    ("fer2013 binary .gz", lambda t: (["evaluate", "fer2013", "--csv",
                                       str(_write(t / "f.csv.gz", gzip.compress(bytes(range(256))
                                                                                * 4)))], {}),
     2, "is not a FER-2013 CSV"),
    ("export a missing checkpoint", lambda t: (["export", str(t / "best.keras"), "--version",
                                                "9.9.9", "--out", str(t / "out")], {}),
     2, "pass a .keras checkpoint"),
    ("utkface empty folder", lambda t: (["evaluate", "utkface", "--dir", str(t)], {}),
     2, "no UTKFace images"),
    ("utkface unknown split", lambda t: (["evaluate", "utkface", "--dir", str(t), "--split",
                                          "nope"], {}), 2, "unknown UTKFace split"),
    ("image claims 100000x100000", lambda t: (["analyze", str(_write(t / "big.png",
                                                                     fake_png(100_000,
                                                                              100_000)))], {}),
     2, "pixels, more than the"),
    ("image claims 20000x20000", lambda t: (["analyze", str(_write(t / "big.png",
                                                                   fake_png(20_000, 20_000)))],
                                            {}), 2, "claims 400,000,000 pixels"),
    ("5,000-character store name", lambda t: (["run", "--source", str(CLIP), "--store",
                                               "s" * 5000, "--db", _url(t)], {}),
     2, "not a valid id"),
    ("store id with a trailing newline", lambda t: (["run", "--source", str(CLIP), "--store",
                                                     "north\n", "--db", _url(t)], {}),
     2, "not a valid id"),
    ("store id with a lone surrogate", lambda t: (["run", "--source", str(CLIP), "--store",
                                                   "\ud800evil", "--db", _url(t)], {}),
     2, "camera.store"),
    ("camera id with rich markup", lambda t: (["run", "--source", str(CLIP), "--camera",
                                               "[bold red]x[/]", "--db", _url(t)], {}),
     2, "not a valid id"),
    ("demo-data into a store id with a quote", lambda t: (["demo-data", "--store", "x'y",
                                                            "--db", _url(t)], {}),
     2, "not a valid id"),
    ("a folder of junk images", lambda t: (["run", "--no-progress", "--db", _url(t), "--source",
                                            _folder(t, {"a.jpg": b"junk", "b.png": b"\x89PNG",
                                                        "c.jpg": b""})], {}),
     2, "could be decoded"),
    ("a folder of one huge image", lambda t: (["run", "--no-progress", "--db", _url(t),
                                               "--source",
                                               _folder(t, {"a.png": fake_png(20_000, 20_000)})],
                                              {}), 2, "could be decoded"),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _url(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'run.db'}"


def _seeded(tmp: Path) -> str:
    url = _db(tmp)
    engine = open_engine(url)
    with VisitSink(engine) as sink:
        for v in _visits("store-1", 3):
            sink.add(v)
    engine.dispose()
    return url


def _visits(store: str, n: int, **over: Any) -> list[Visit]:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 11, 2, 10, tzinfo=UTC)
    return [Visit(**({"store_id": store, "camera_id": "cam-1", "track_id": f"t{i}",
                      "started_at": t0 + timedelta(minutes=i), "ended_at": t0 + timedelta(
                          minutes=i, seconds=30), "dwell_s": 30.0, "n_crops": 1,
                      "model_version": "test", "gender": "female", "gender_score": 0.9,
                      "emotion": "happy", "age": 30.0, "age_bracket": "25-34"} | over))
            for i in range(n)]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("setup", "code", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_and_its_exit_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: Setup, code: int,
        message: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("AUDIENCE_DATABASE__URL", raising=False)
    args, env = setup(tmp_path)
    before = _files(tmp_path)
    res = CliRunner().invoke(app, ["-q", *args], env=env)
    out = res.output
    assert res.exit_code == code, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in out and SECRET not in out
    assert "Store store-1" not in out  # refused before any work, not after printing a report
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    usage = "Invalid value" in out  # a bad option value: Typer's usage message, exit 2
    assert (len(errors) == 1 and message in errors[0]) or (usage and message in out), out
    # nothing half-written: no new file besides the databases the commands read or made
    new = {p for p in _files(tmp_path) - before if not p.name.endswith(".db")}
    assert not new, new


@pytest.mark.parametrize("command", ["report", "segments"])
def test_full_disk_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         command: str) -> None:
    """A write that fails midway (ENOSPC at fsync) leaves the old file, never a 0-byte one."""
    import audience.core.files as files

    url = _seeded(tmp_path)
    target = tmp_path / ("out.html" if command == "report" else "out.csv")
    target.write_text("the previous one")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    args = (["report", "--out", str(target)] if command == "report"
            else ["segments", "--by", "gender", "--csv", str(target)])
    res = CliRunner().invoke(app, [*args, "--store", "store-1", "--db", url, "--k", "2"])
    assert res.exit_code == 2 and "No space left on device" in res.output, res.output
    assert target.read_text() == "the previous one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audience.db", target.name]


def test_report_file_names_are_unique_per_store() -> None:
    stores = ["a/b", "a b", "a_b", "a?b", "é", "ü", "北", "s" * 5000, "s" * 5001, "north-1",
              "..", ".hidden"]
    names = [report_file_name(s) for s in stores]
    assert len(set(names)) == len(stores), names
    assert all(len(n) < 100 and "/" not in n and not n.startswith(".") for n in names)
    assert report_file_name("north-1") == "report-north-1.html"


@pytest.mark.parametrize("store", ["[/]", "[bold red]x[/]", "a:smile:b"])
def test_store_ids_print_literally(tmp_path: Path, store: str) -> None:
    """Ids that arrived before the id rule (or straight into the database) are text."""
    url = _db(tmp_path)
    engine = open_engine(url)
    with VisitSink(engine) as sink:
        for v in _visits(store, 6):
            sink.add(v)
    engine.dispose()
    for args in (["report", "--out", str(tmp_path / "r.html")],
                 ["segments", "--by", "gender"]):
        res = CliRunner().invoke(app, [*args, "--store", store, "--db", url])
        assert res.exit_code == 0, res.output
        assert f"Store {store}" in res.output


@pytest.mark.parametrize(("value", "ok"), [
    ("north-1", True), ("paris:entrance", True), ("a" * 64, True), ("a" * 65, False),
    ("", False), ("north\n", False), ("\ud800evil", False), ("x' OR '1'='1", False),
    ("a b", False), ("a/b", False), ("é", False), ("[/]", False), (None, False), (7, False),
])
def test_one_id_rule(value: object, ok: bool) -> None:
    assert is_valid_id(value) is ok
    if not ok:
        with pytest.raises(Exception, match="not a valid id"):
            check_id(value, "store id")


def test_provision_checks_every_store_before_changing_superset() -> None:
    from audience.reports.dashboards.client import SupersetError
    from audience.reports.dashboards.provision import provision

    calls: list[Any] = []
    sup = SimpleNamespace(import_bundle=lambda *a: calls.append(a),
                          call=lambda *a, **k: calls.append(a), find=lambda *a: [],
                          url="http://superset.invalid")
    with pytest.raises(SupersetError, match="store id"):
        provision(sup, "sqlite:///x.db", ["north", "south", "bad\n"])  # type: ignore[arg-type]
    assert calls == []


def test_ethnicity_scores_absent_is_sql_null(engine: Any) -> None:
    with VisitSink(engine) as sink:
        for v in _visits("store-1", 1, emotion_scores={"happy": 1.0}):
            sink.add(v)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT ethnicity_scores IS NULL, emotion_scores IS NULL "
                                "FROM visits")).one()
    assert tuple(row) == (True, False) or tuple(row) == (1, 0)


def test_metrics_bind_loopback_unless_configured() -> None:
    from prometheus_client import CollectorRegistry

    from audience.core.health import serve
    from audience.core.kafka_config import KafkaConfig

    cfg = KafkaConfig()
    assert cfg.metrics_host == "127.0.0.1"
    server = serve(CollectorRegistry(), 0 or _free_port(), lambda: True, host=cfg.metrics_host)
    assert server is not None
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_truncated_gif_is_reported_and_counted(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from audience.ingest.sources import open_source

    half = tmp_path / "half.gif"
    data = CLIP.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    src = open_source(half, fps=5, progress=False)
    frames = sum(1 for _ in src)
    assert frames > 0 and src.skipped >= 1
    assert "is truncated" in caplog.text
    whole = open_source(CLIP, fps=5, progress=False)
    caplog.clear()
    assert sum(1 for _ in whole) > frames and "truncated" not in caplog.text


def test_huge_images_are_refused_by_their_header_not_decoded(tmp_path: Path) -> None:
    from audience.core.images import ImageTooLargeError, read_image

    big = _write(tmp_path / "big.png", fake_png(20_000, 20_000))
    with pytest.raises(ImageTooLargeError, match="claims 400,000,000 pixels"):
        read_image(big)
    ok = tmp_path / "ok.png"
    cv2.imwrite(str(ok), np.zeros((8, 8), np.uint8))
    assert read_image(ok) is not None
