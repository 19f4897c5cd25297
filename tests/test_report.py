"""reports: k-suppressed table and HTML report, and the `audience report` command."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from audience.core.errors import SERVICE_EXIT as STORAGE_EXIT
from audience.core.visit import Visit
from audience.reports.cli import parse_since
from audience.reports.report import Report, build_report, render_table, write_html
from audience.storage.published import Published, Window
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


@pytest.mark.parametrize(("n_men", "male", "female", "suppressed"), [
    # 4 men are under k; hidden alone they would follow as total minus 10 women, so the
    # women are hidden too (complementary) and both are only summed.
    (4, [], [], ["14"]),
    (5, ["5"], ["10"], []),
])
def test_table_k_suppression(engine: Engine, make_visit: MakeVisit, n_men: int,
                             male: list[str], female: list[str], suppressed: list[str]) -> None:
    _write(engine, _store(make_visit, n_men))
    report = build_report(engine, "store-1", k=5)
    assert report.total == n_men + 10
    text = render_table(report)
    assert _cells(text, "male") == male and _cells(text, "female") == female
    assert _cells(text, "sad") == male and _cells(text, "65+") == male
    assert _cells(text, "suppressed") == suppressed * 4  # dwell, age, gender, emotion
    assert _cells(text, "visits") == [str(n_men + 10)]
    assert "Days: the first visit to" in text and "fewer than 5 visits" in text
    if n_men == 4:
        assert not re.search(r"│\s+4\s+│", text)  # the 4 men's count appears nowhere


def test_whole_small_store_publishes_nothing(engine: Engine, make_visit: MakeVisit) -> None:
    _write(engine, [make_visit() for _ in range(4)])
    report = build_report(engine, "store-1", k=5)
    assert report.total == 0
    for p in (report.footfall, report.dwell, report.age, report.gender, report.emotion):
        assert p.counts == {} and p.suppressed == 0
    text = render_table(report)
    assert _cells(text, "visits") == ["0"] and _cells(text, "female") == []
    assert "Nothing to publish: no camera had 5 or more visits on any day" in text


def test_a_store_without_visits_publishes_nothing(engine: Engine, make_visit: MakeVisit) -> None:
    _write(engine, _store(make_visit, 5))  # store-1: published; another store's visits stay out
    report = build_report(engine, "nowhere", k=5)
    assert report.total == 0
    for p in (report.footfall, report.dwell, report.age, report.gender, report.emotion):
        assert p == Published()


def test_since_limits_the_report_to_whole_days(engine: Engine, make_visit: MakeVisit) -> None:
    _write(engine, _store(make_visit, 5))
    _write(engine, [make_visit(started_at=T0 + timedelta(days=3)) for _ in range(6)])
    report = build_report(engine, "store-1", Window("UTC", (T0 + timedelta(days=2)).date()))
    assert report.total == 6 and report.gender.counts == {"female": 6}
    assert build_report(engine, "store-1", Window("UTC", (T0 + timedelta(days=4)).date())
                        ).total == 0


def test_unknown_share_counts_every_visit(engine: Engine, make_visit: MakeVisit,
                                         tmp_path: Path) -> None:
    # Visits without a usable crop (n_crops = 0, no labels) are a share of their own.
    _write(engine, [make_visit(age=None, gender=None, emotion=None, n_crops=0,
                               emotion_scores=None, gender_score=None) for _ in range(6)]
           + [make_visit(gender="male") for _ in range(6)])
    report = build_report(engine, "store-1", k=5)
    assert report.total == 12
    assert report.gender.counts == {"unknown": 6, "male": 6}
    assert report.age.counts == {"unknown": 6, "25-34": 6}
    text = render_table(report)
    for row in re.findall(r"│ unknown\s+│\s+(\S+) │\s+(\S+) │", text):
        assert row == ("6", "50%")
    assert len(re.findall(r"│ unknown ", text)) == 3  # age, gender, emotion; not dwell
    page = write_html(report, tmp_path / "r.html").read_text()
    assert page.count("<td>unknown 6 (50%)</td>") == 3


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in
            re.findall(r'<img alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)]


def test_html_has_five_plots_and_the_rules(engine: Engine, make_visit: MakeVisit,
                                           tmp_path: Path) -> None:
    _write(engine, _store(make_visit, 4))
    report = build_report(engine, "store-1", k=5)
    path = write_html(report, tmp_path / "sub" / "r.html")
    page = path.read_text(encoding="utf-8")
    assert page.count("<img") == 5
    pngs = _pngs(page)
    assert len(pngs) == 5 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    # Both rules, truthfully: under k, and complementary (hidden although k or more).
    assert "A cell with fewer than 5 visits is hidden" in page
    assert "hidden although it has 5 or more visits" in page
    assert f"Generated {report.generated_at:%Y-%m-%d %H:%M}" in page
    assert "http" not in page.replace('lang="en"', "")  # self-contained: nothing fetched


def test_html_for_an_empty_report(tmp_path: Path) -> None:
    # No database needed: a report is plain data.
    empty = Published()
    report = Report(store="s<1>", window=Window(), generated_at=T0, k=5, footfall=empty,
                    dwell=empty, age=empty, gender=empty, emotion=empty)
    page = write_html(report, tmp_path / "r.html").read_text()
    assert page.count("<img") == 5 and "s&lt;1&gt;" in page and "s<1>" not in page


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


def test_parse_since_reads_a_naive_date_in_the_store_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_since("2024-05-01", now=T0, tz=berlin) == datetime(2024, 4, 30, 22, tzinfo=UTC)


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
    assert _cells(res.stdout, "male") == [] and _cells(res.stdout, "female") == []
    default = Path("reports/out/report-store-1.html")
    assert f"HTML report: {default}" in res.stdout
    assert (tmp_path / default).read_text().count("<img") == 5

    # --k below the floor is raised to it, and says so.
    out = tmp_path / "x.html"
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url,
                                      "--k", "3", "--since", "2024-05-06", "--out", str(out)])
    assert res.exit_code == 0 and _cells(res.stdout, "male") == [] and out.is_file()
    assert "--k 3 is below the floor of 5: using k=5" in res.stderr

    # Only a config that lowers the floor on purpose lets k=3 through.
    cfg = tmp_path / "demo.yaml"
    cfg.write_text("report:\n  k_floor: 3\n")
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url,
                                      "--k", "3", "--config", str(cfg), "--out", str(out)])
    assert res.exit_code == 0 and _cells(res.stdout, "male") == ["4"] and not res.stderr
    cfg.write_text("report:\n  k: 3\n  k_floor: 3\n")
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url,
                                      "--config", str(cfg), "--out", str(out)])
    assert res.exit_code == 0 and _cells(res.stdout, "male") == ["4"]


@pytest.mark.parametrize(("yaml_text", "env", "message"), [
    ("report:\n  k: 2\n", {}, "k=2 is below k_floor=5"),
    ("report:\n  timezones: {store-1: Mars/Olympus}\n", {}, "unknown time zone 'Mars/Olympus'"),
    ("", {"AUDIENCE_REPORT__K": "3"}, "k=3 is below k_floor=5"),
])
def test_cli_report_config_errors_are_one_line(engine: Engine, db_url: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, yaml_text: str,
                                               env: dict[str, str], message: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url,
                                      "--config", str(cfg)])
    assert res.exit_code == 2 and message in res.stderr, res.output
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.output


def test_cli_report_snaps_since_to_the_local_day(engine: Engine, db_url: str,
                                                 make_visit: MakeVisit, tmp_path: Path) -> None:
    _write(engine, _store(make_visit, 5))
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url,
                                      "--since", "2024-05-06T09:30", "--out",
                                      str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert "--since 2024-05-06T09:30 snapped to 2024-05-06 00:00 UTC" in res.stderr
    assert "Days: 2024-05-06 to" in res.stdout and _cells(res.stdout, "visits") == ["15"]


def test_cli_report_empty_store(engine: Engine, db_url: str, make_visit: MakeVisit) -> None:
    _write(engine, [make_visit(store_id="elsewhere")])
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url])
    assert res.exit_code == 0
    assert "no visits for store 'store-1'" in res.stdout
    assert "elsewhere" not in res.output  # other stores' ids are not a reader's business
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


def test_cli_until_ends_before_a_whole_day(engine: Engine, db_url: str, make_visit: MakeVisit,
                                           tmp_path: Path) -> None:
    _write(engine, _store(make_visit, 5))  # 2024-05-06
    _write(engine, [make_visit(started_at=T0 + timedelta(days=3)) for _ in range(6)])
    out = str(tmp_path / "r.html")
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url,
                                      "--until", "2024-05-07", "--out", out])
    assert res.exit_code == 0, res.output
    assert "Days: the first visit to 2024-05-06" in res.stdout
    assert _cells(res.stdout, "visits") == ["15"]
    res = CliRunner().invoke(_app(), ["report", "--store", "store-1", "--db", db_url,
                                      "--until", "0d", "--out", out])  # closed days only
    assert res.exit_code == 0 and _cells(res.stdout, "visits") == ["21"]
    res = CliRunner().invoke(_app(), ["segments", "--by", "gender", "--store", "store-1",
                                      "--db", db_url, "--since", "2024-05-08", "--until",
                                      "2024-05-08T12:00"])
    assert res.exit_code == 2 and "has no whole day" in res.output


def test_shares_are_corrected_with_intervals_from_published_cells(
        engine: Engine, make_visit: MakeVisit, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    _write(engine, _store(make_visit, 5))
    report = build_report(engine, "store-1", k=5)
    text = render_table(report)
    # 10 women, 5 men shown: corrected share of the labelled visits with a 90% interval
    assert re.search(r"│ female\s+│\s+10 │\s+67% │\s+\d+% \(\d+-\d+%\) │", text)
    words = " ".join(text.split())
    assert "9 times in 10" in words and "gender: corrected for the model's confusion" in words
    page = write_html(report, tmp_path / "r.html").read_text()
    assert "; corrected " in page and "9 times in 10" in page

    # a model without confusion matrices: sampling error only, and the report says so
    from audience.reports import intervals

    monkeypatch.setattr(intervals, "manifest_confusions", lambda: {})
    plain = render_table(report)
    words = " ".join(plain.split())  # notes wrap at the console's width
    assert "gender: not corrected" in words and "sampling error only" in words
    assert re.search(r"│ female\s+│\s+10 │\s+67% │\s+67% \(\d+-\d+%\) │", plain)
