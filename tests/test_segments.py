"""`audience segments`: k-suppressed visit counts per period and segment, SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from audience.core.errors import SERVICE_EXIT as STORAGE_EXIT
from audience.core.visit import Visit
from audience.reports.segments import Period, SegmentRow, figure, parse_dimensions, segments
from audience.storage.db import migrate, open_engine
from audience.storage.published import Window
from audience.storage.sink import VisitSink

MakeVisit = Callable[..., Visit]
MON = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)  # a Monday
D0 = MON.date()


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def many(n: int, on: int = 0, **over: Any) -> list[dict[str, Any]]:
    """n visits on day `on` (0 = Monday 2026-11-16), one minute apart, with these overrides."""
    start = over.pop("started_at", MON + timedelta(days=on))
    return [dict(over, started_at=start + timedelta(minutes=i)) for i in range(n)]


def _write(engine: Engine, make_visit: MakeVisit, specs: list[dict[str, Any]]) -> None:
    with VisitSink(engine) as sink:
        for spec in specs:
            sink.add(make_visit(**spec))


WEEK_DATA = (many(3, gender="female") + many(3, 6, gender="female")  # Monday and Sunday
             + many(6, 2, gender="male") + many(5, 7, gender="female"))  # next Monday

S = ()  # the labels of a period's one suppressed row: hidden cells summed, never listed

# by, period, k, since, visits, expected (period, labels, count; labels S: the suppressed sum)
CASES: dict[str, tuple[str, Period, int, datetime | None, list[dict[str, Any]], list[Any]]] = {
    "day: a day under k is left out whole": (
        "gender", Period.day, 5, None, WEEK_DATA,
        [(day(2), ("male",), 6), (day(7), ("female",), 5)]),
    "week: sums of published days, Monday to Sunday": (
        # Monday's and Sunday's 3 women are two days under k: left out, not added up.
        "gender", Period.week, 5, None, WEEK_DATA,
        [(day(0), ("male",), 6), (day(7), ("female",), 5)]),
    "week is UTC: Sunday 23:30 at UTC-2 is next Monday": (
        "gender", Period.week, 2, None,
        many(2, gender="male", started_at=datetime.fromisoformat("2026-11-22T23:30:00-02:00")),
        [(day(7), ("male",), 2)]),
    "multi-dimension, NULL reads unknown, equal counts by label": (
        "age_bracket,gender,emotion", Period.day, 5, None,
        many(5, age=None, gender=None, emotion=None) + many(6, age=30, emotion="happy")
        + many(5, age=70, gender="male", emotion="sad"),
        [(day(0), ("25-34", "female", "happy"), 6), (day(0), ("65+", "male", "sad"), 5),
         (day(0), ("unknown", "unknown", "unknown"), 5)]),
    "dimension order follows --by": (
        "gender,age_bracket", Period.day, 5, None, many(5, age=30),
        [(day(0), ("female", "25-34"), 5)]),
    "one hidden: the smallest shown is hidden too, both only summed": (
        "gender", Period.day, 5, None,
        many(8, gender="female") + many(2, gender=None) + many(6, gender="male"),
        [(day(0), ("female",), 8), (day(0), S, 8)]),
    "two hidden holding k together: no complementary suppression": (
        "emotion", Period.day, 5, None,
        many(8, emotion="happy") + many(6, emotion="sad") + many(3, emotion="angry")
        + many(2, emotion=None),
        [(day(0), ("happy",), 8), (day(0), ("sad",), 6), (day(0), S, 5)]),
    "two hidden holding fewer than k: one more hidden": (
        "emotion", Period.day, 5, None,
        many(8, emotion="happy") + many(6, emotion="sad") + many(1, emotion="angry")
        + many(1, emotion=None),
        [(day(0), ("happy",), 8), (day(0), S, 8)]),
    "hidden cells are summed, never listed by label": (
        "age_bracket", Period.day, 5, None,
        many(10, age=30) + many(4, age=70) + many(1, age=20) + many(7, age=40),
        [(day(0), ("25-34",), 10), (day(0), ("35-44",), 7), (day(0), S, 5)]),
    "margins: a hidden cell cannot be had from a one-label subtotal": (
        # Without margin protection, the age view's 25-34 = 8 minus the shown
        # (25-34, female) = 6 would give (25-34, male) = 2.
        "age_bracket,gender", Period.day, 5, None,
        many(6, age=30) + many(2, age=30, gender="male") + many(3, age=70)
        + many(6, age=70, gender="male"),
        [(day(0), S, 17)]),
    "period total under k hides every cell": (
        "gender", Period.week, 5, None, many(2, gender="female") + many(2, 3, gender="male"),
        []),
    "k is a parameter": (
        "gender", Period.day, 3, None, many(3, gender="female") + many(3, gender="male"),
        [(day(0), ("female",), 3), (day(0), ("male",), 3)]),
    "since: whole days from the day that holds it": (
        # Wednesday 09:30 means all of Wednesday: its 6 men (from 09:00) stay.
        "gender", Period.week, 5, MON + timedelta(days=2, minutes=30), WEEK_DATA,
        [(day(0), ("male",), 6), (day(7), ("female",), 5)]),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_segments(engine: Engine, make_visit: MakeVisit, case: str) -> None:
    by, period, k, since, specs, expected = CASES[case]
    _write(engine, make_visit, specs + many(9, store_id="other"))
    window = Window("UTC", since.date() if since else None)
    rows = segments(engine, "store-1", parse_dimensions(by), period, window, k=k)
    assert rows == [SegmentRow(p, labels, n, suppressed=labels == S)
                    for p, labels, n in expected]


@pytest.mark.parametrize(("text", "match"), [
    ("age", r"unknown dimension 'age': choose 1 to 3 of age_bracket, gender, emotion"),
    ("gender,ethnicity", r"unknown dimension 'ethnicity'"),
    ("gender,gender", r"distinct"),
    (" , ", r"1 to 3"),
])
def test_dimension_errors(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_dimensions(text)


def _app() -> typer.Typer:
    from audience.cli import app

    return app


def _run(*args: str) -> Any:
    return CliRunner().invoke(_app(), ["segments", *args])


def test_cli_table_and_csv(engine: Engine, db_url: str, make_visit: MakeVisit,
                           tmp_path: Path) -> None:
    _write(engine, make_visit,
           many(8, gender="female") + many(6, gender="male") + many(2, gender=None)
           + many(5, 7, gender="male", emotion="sad"))
    out = tmp_path / "seg" / "s.csv"
    res = _run("--by", "gender,emotion", "--period", "week", "--store", "store-1",
               "--db", db_url, "--csv", str(out))
    assert res.exit_code == 0, res.output
    # male 6 hidden (complementary) and summed with unknown 2: never listed by label
    assert "(suppressed)" in res.stdout and "│      6 │" not in res.stdout
    assert "unknown" not in res.stdout.split("Cells are")[0]
    assert "2026-11-16" in res.stdout and "2026-11-23" in res.stdout
    assert f"CSV: {out}" in res.stdout
    with out.open(newline="") as f:
        table = list(csv.reader(f))
    assert [r[:5] for r in table] == [
        ["week", "gender", "emotion", "visits", "suppressed"],
        ["2026-11-16", "female", "happy", "8", "false"],
        ["2026-11-16", "", "", "8", "true"],
        ["2026-11-23", "male", "sad", "5", "false"],
    ]
    # the corrected share of the period's labelled shown visits and its 90% interval: a
    # period's only shown segment is all of them; never for the suppressed row
    assert table[0][5:] == ["share", "share_low", "share_high"]
    assert table[1][5:] == ["1.0000", "1.0000", "1.0000"] and table[2][5:] == ["", "", ""]
    assert "100% (100-100%)" in res.stdout and "9 times in 10" in res.stdout


def test_png_draws_exactly_the_published_rows(engine: Engine, db_url: str,
                                              make_visit: MakeVisit, tmp_path: Path) -> None:
    _write(engine, make_visit,
           many(8, gender="female") + many(6, gender="male") + many(2, gender=None)
           + many(5, 7, gender="male", emotion="sad") + many(7, 7, gender="female"))
    rows = segments(engine, "store-1", ("gender", "emotion"), Period.week, Window(), k=5)
    ax = figure(rows, 5, "t").axes[0]
    heights: dict[float, float] = {}
    for bar in ax.patches:
        x = round(bar.get_x() + bar.get_width() / 2)
        heights[x] = heights.get(x, 0) + bar.get_height()
    per_period: dict[date, int] = {}
    for row in rows:
        per_period[row.period] = per_period.get(row.period, 0) + row.count
    assert list(heights.values()) == list(per_period.values()) == [16, 12]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    # Hidden cells (male/happy 6, unknown/happy 2) only as the grey sum, never by name.
    assert legend == ["female / happy", "male / sad", "(suppressed, under 5 or complementary)"]

    out = tmp_path / "seg" / "s.png"
    res = _run("--by", "gender,emotion", "--period", "week", "--store", "store-1",
               "--db", db_url, "--png", str(out))
    assert res.exit_code == 0, res.output
    assert f"PNG: {out}" in res.stdout
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_cli_unknown_dimension(db_url: str) -> None:
    res = _run("--by", "age_bracket,ethnicity", "--store", "store-1", "--db", db_url)
    assert res.exit_code == 2
    assert "ethnicity" in res.output and "age_bracket, gender, emotion" in res.output


def test_cli_k_must_be_at_least_2(engine: Engine, db_url: str) -> None:
    res = _run("--by", "gender", "--store", "store-1", "--db", db_url, "--k", "1")
    assert res.exit_code == 2 and "--k" in res.output


def test_cli_empty_writes_header(engine: Engine, db_url: str, make_visit: MakeVisit,
                                 tmp_path: Path) -> None:
    _write(engine, make_visit, many(6, store_id="other"))
    out = tmp_path / "empty.csv"
    res = _run("--by", "age_bracket", "--store", "store-1", "--db", db_url, "--csv", str(out),
               "--since", "2026-01-01")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == (
        "nothing to publish for store 'store-1', from 2026-01-01 (UTC): no visits for this store "
        "in the database")
    assert "other" not in res.output  # other stores' ids are not listed
    assert out.read_text() == "day,age_bracket,visits,suppressed,share,share_low,share_high\n"


def test_cli_unmigrated_database_is_one_line(db_url: str) -> None:
    migrate(db_url, revision="0001")
    res = _run("--by", "gender", "--store", "store-1", "--db", db_url)
    assert res.exit_code == STORAGE_EXIT
    assert res.stderr.count("\n") == 1 and "audience db upgrade" in res.stderr
    assert "Traceback" not in res.output


def test_installed_command_on_sqlite_file(tmp_path: Path, make_visit: MakeVisit) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    migrate(url)
    engine = open_engine(url)
    try:
        _write(engine, make_visit, many(5, age=70) + many(3, age=30) + many(2, age=20))
    finally:
        engine.dispose()
    exe = Path(sys.executable).parent / "audience"
    res = subprocess.run([str(exe), "segments", "--by", "age_bracket", "--store", "store-1",
                          "--db", url], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "visits per day by age_bracket" in res.stdout
    assert re.search(r"│ 2026-11-16 │ 65\+ +│ +5 │", res.stdout)
    assert re.search(r"│ 2026-11-16 │ \(suppressed\) +│ +5 │", res.stdout)  # 3 + 2
    assert "25-34" not in res.stdout and "18-24" not in res.stdout


def test_png_shows_the_corrected_shares_with_error_bars(engine: Engine,
                                                         make_visit: MakeVisit) -> None:
    _write(engine, make_visit, many(8, gender="female") + many(7, gender="male"))
    rows = segments(engine, "store-1", ("gender",), Period.week, Window(), k=5)
    panel = figure(rows, 5, "t", ("gender",)).axes[1]
    assert "90% interval" in panel.get_title()
    assert [t.get_text() for t in panel.get_yticklabels()] == ["female", "male"]
    assert panel.lines  # the error bars' markers
