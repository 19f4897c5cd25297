"""reports: k-suppressed table and HTML report, and the `audience report` command."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from audience.core.errors import SERVICE_EXIT as STORAGE_EXIT
from audience.core.visit import Visit
from audience.reports.cli import parse_since
from audience.reports.report import Report, build_report, render_table, write_html
from audience.storage.sink import VisitSink

MakeVisit = Callable[..., Visit]
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def _write(engine: Engine, visits: list[Visit]) -> None:
    with VisitSink(engine) as sink:
        for v in visits:
            sink.add(v)


def _store(make_visit: MakeVisit, n_men: int, n_women: int = 10) -> list[Visit]:
    """n_men sad 65+ men and n_women happy 25-34 women, all within 09:00-10:00 UTC."""
    return ([make_visit(gender="male", emotion="sad", age=70, dwell_s=60.0)
             for _ in range(n_men)]
            + [make_visit(gender="female", emotion="happy", age=30, dwell_s=20.0)
               for _ in range(n_women)])


def _cells(text: str, label: str) -> list[str]:
    """The visits cell of every table row whose first cell is `label`."""
    return re.findall(rf"│ {re.escape(label)}\s+│\s+(\S+)", text)


@pytest.mark.parametrize(("n_men", "shown"), [(4, "<5"), (5, "5")])
def test_table_k_suppression(engine: Engine, make_visit: MakeVisit, n_men: int,
                             shown: str) -> None:
    _write(engine, _store(make_visit, n_men))
    report = build_report(engine, "store-1", k=5)
    assert report.total == n_men + 10 and not report.empty
    text = render_table(report)
    assert _cells(text, "male") == [shown]
    assert _cells(text, "sad") == [shown]
    assert _cells(text, "65+") == [shown]
    # with only two groups, hiding one hides the other (secondary suppression)
    assert _cells(text, "female") == ["<5" if n_men < 5 else "10"]
    assert _cells(text, "visits") == [str(n_men + 10)]
    assert "2024-05-06 09:00" in text and "fewer than 5 visits" in text
    if n_men == 4:
        assert "4" not in "".join(_cells(text, "male") + _cells(text, "sad"))


def test_whole_small_store_is_suppressed(engine: Engine, make_visit: MakeVisit) -> None:
    _write(engine, [make_visit() for _ in range(4)])
    report = build_report(engine, "store-1", k=5)
    assert report.total is None and not report.empty
    assert all(g.suppressed for g in [*report.age, *report.gender, *report.emotion,
                                      *report.footfall])
    text = render_table(report)
    assert _cells(text, "visits") == ["<5"] and _cells(text, "female") == ["<5"]
    assert re.search(r"│ median dwell\s+│\s+- │", text)


def test_since_limits_the_report(engine: Engine, make_visit: MakeVisit) -> None:
    _write(engine, _store(make_visit, 5))
    _write(engine, [make_visit(started_at=T0 + timedelta(days=3)) for _ in range(6)])
    report = build_report(engine, "store-1", since=T0 + timedelta(days=2, minutes=30))
    assert report.since == T0 + timedelta(days=2)  # rounded down to the hour
    assert report.total == 6 and [g.key for g in report.gender] == ["female"]
    assert build_report(engine, "store-1", since=T0 + timedelta(days=4)).empty


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in
            re.findall(r'<img alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)]


def test_html_has_four_plots_and_the_k_note(engine: Engine, make_visit: MakeVisit,
                                            tmp_path: Path) -> None:
    _write(engine, _store(make_visit, 4))
    report = build_report(engine, "store-1", k=5)
    path = write_html(report, tmp_path / "sub" / "r.html")
    page = path.read_text(encoding="utf-8")
    assert page.count("<img") == 4
    pngs = _pngs(page)
    assert len(pngs) == 4 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert "fewer than\n5 visits is suppressed" in page and "&lt;5" in page
    assert f"Generated {report.generated_at:%Y-%m-%d %H:%M}" in page
    assert "http" not in page.replace('lang="en"', "")  # self-contained: nothing fetched


def test_html_for_an_all_suppressed_report(tmp_path: Path) -> None:
    # No database needed: a report is plain data.
    from audience.storage.query import DwellSummary, Group, HourCount
    report = Report(store="s<1>", since=None, generated_at=T0, k=5, total=None,
                    dwell=DwellSummary(None, None, None, True),
                    footfall=[HourCount(T0, None, None, True)],
                    age=[Group("18-24", None, True)], gender=[], emotion=[])
    page = write_html(report, tmp_path / "r.html").read_text()
    assert page.count("<img") == 4 and "s&lt;1&gt;" in page and "s<1>" not in page


@pytest.mark.parametrize(("text", "expected"), [
    ("7d", T0 - timedelta(days=7)),
    ("12h", T0 - timedelta(hours=12)),
    ("30m", T0 - timedelta(minutes=30)),
    ("2W", T0 - timedelta(weeks=2)),
    ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ("2024-05-01T08:30", datetime(2024, 5, 1, 8, 30, tzinfo=UTC)),
    ("2024-05-01T08:30+02:00", datetime(2024, 5, 1, 6, 30, tzinfo=UTC)),
    (None, None),
])
def test_parse_since(text: str | None, expected: datetime | None) -> None:
    assert parse_since(text, now=T0) == expected


def test_parse_since_rejects_garbage() -> None:
    with pytest.raises(typer.BadParameter, match="neither a duration"):
        parse_since("last tuesday", now=T0)


# -- CLI -------------------------------------------------------------------------------------

def _app() -> typer.Typer:
    from audience.cli import app

    return app


def test_cli_report(engine: Engine, db_url: str, make_visit: MakeVisit, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    _write(engine, _store(make_visit, 4))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url])
    assert res.exit_code == 0, res.output
    assert _cells(res.stdout, "male") == ["<5"] and _cells(res.stdout, "female") == ["<5"]
    default = Path("reports/out/report-store-1.html")
    assert f"HTML report: {default}" in res.stdout
    assert (tmp_path / default).read_text().count("<img") == 4

    out = tmp_path / "x.html"
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url,
                                      "--k", "3", "--since", "2024-05-06", "--out", str(out)])
    assert res.exit_code == 0 and _cells(res.stdout, "male") == ["4"] and out.is_file()


def test_cli_report_empty_store(engine: Engine, db_url: str, make_visit: MakeVisit) -> None:
    _write(engine, [make_visit(store_id="elsewhere")])
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url])
    assert res.exit_code == 0
    assert "no visits for store 'store-1'" in res.stdout and "elsewhere" in res.stdout
    assert "HTML report" not in res.stdout


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://postgres:pw@127.0.0.1:1/x", "cannot reach the database"),
    ("sqlite:///{tmp}/missing.db", "no SQLite database at"),
])
def test_cli_report_storage_errors(url: str, message: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(_app(), ["report", "--store", "s",
                                      "--db", url.format(tmp=tmp_path)])
    assert res.exit_code == STORAGE_EXIT and message in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.output
    assert not (tmp_path / "missing.db").exists()


def test_cli_report_not_migrated(db_url: str) -> None:
    from audience.storage.db import open_engine
    open_engine(db_url).dispose()
    if db_url.startswith("sqlite"):  # make the file exist, empty
        Path(db_url.removeprefix("sqlite:///")).touch()
    res = CliRunner().invoke(_app(), ["report", "--store", "s", "--db", db_url])
    assert res.exit_code == STORAGE_EXIT and "audience db upgrade" in res.stderr


def test_cli_report_bad_since(engine: Engine, db_url: str) -> None:
    res = CliRunner().invoke(_app(), ["report", "--store", "s", "--db", db_url,
                                      "--since", "yesterday"])
    assert res.exit_code == 2 and "neither a duration" in res.output


def test_k_below_two_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="k must be >= 2"):
        build_report(engine, "store-1", k=1)


def test_cli_k_below_two_is_refused(engine: Engine, db_url: str) -> None:
    res = CliRunner().invoke(_app(), ["report", "--store", "s", "--db", db_url, "--k", "1"])
    assert res.exit_code == 2 and "Traceback" not in res.output
