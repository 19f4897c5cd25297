"""The differencing attack, against every output: it must fail.

One visitor at 09:30 (female, 65+, sad, 417.5 s) and ten at 10:00-10:59 (male, 25-34, happy,
27 s). Before 0004, `report --since 09:00` and `--since 10:00` differed by exactly that
visitor: her gender, age bracket, emotion and dwell (11 x 62.5 - 10 x 27.0) followed by
subtraction, and `segments` listed her cell by label. Now windows are whole store-local days
and every figure is a sum of published cells, so both windows publish the same thing, and her
labels appear nowhere. With a busy afternoon the day is published, and still identical.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, select
from typer.testing import CliRunner

from audience.core.visit import Visit
from audience.storage.report_settings import write_report_settings
from audience.storage.schema import (
    report_age_daily,
    report_attention_daily,
    report_dwell_daily,
    report_emotion_daily,
    report_gender_daily,
    report_visits_daily,
    report_visits_hourly,
)
from audience.storage.sink import VisitSink

DAY = datetime(2026, 11, 29, tzinfo=UTC)
WINDOWS = ("2026-11-29T09:00", "2026-11-29T10:00")
HER = ("65+", "sad", "3-10 min", "417")  # what the attack recovered about the lone visitor
# She is also the morning's one watcher (12.3 s facing the camera): no output may show a
# watcher that morning, nor her attention time.
HER_ATTENTION = ("12.3",)


def _visits(make_visit: Callable[..., Visit], busy: bool) -> list[Visit]:
    out = [make_visit(store_id="ks", started_at=DAY.replace(hour=9, minute=30), gender="female",
                      age=70.0, emotion="sad", dwell_s=417.5, attention_s=12.3, watcher=True)]
    out += [make_visit(store_id="ks", started_at=DAY.replace(hour=10, minute=5 * i),
                       gender="male", age=30.0, emotion="happy", dwell_s=27.0, attention_s=0.4,
                       watcher=False)
            for i in range(10)]
    if busy:  # a busy afternoon: the day is published, she is still not recoverable
        out += [make_visit(store_id="ks", started_at=DAY + timedelta(hours=15, minutes=i),
                           gender="female", age=30.0, emotion="happy", dwell_s=20.0,
                           attention_s=2.0, watcher=True)
                for i in range(20)]
    return out


def _run(*args: str) -> Any:
    from audience.cli import app

    return CliRunner().invoke(app, list(args))


def _report(db_url: str, since: str, tmp: Path) -> tuple[str, ...]:
    out = tmp / "r.html"
    res = _run("report", "--store", "ks", "--db", db_url, "--since", since, "--out", str(out))
    assert res.exit_code == 0, res.output
    page = re.sub(r"Generated [^<]*", "", out.read_text())
    return res.stdout, page


def _segments(db_url: str, since: str, tmp: Path) -> tuple[str, ...]:
    outs: list[str] = []
    for by in ("age_bracket,gender,emotion", "looked,gender"):
        out = tmp / "s.csv"
        res = _run("segments", "--by", by, "--store", "ks", "--db", db_url,
                   "--since", since, "--csv", str(out))
        assert res.exit_code == 0, res.output
        with out.open(newline="") as f:
            outs += [res.stdout, repr(list(csv.reader(f)))]
    return tuple(outs)


def _sums(engine: Engine, view: Table, label: str, since: datetime) -> dict[Any, int]:
    """What a dashboard shows for "from `since`": hourly rows from that hour, daily rows from
    that day, summed per label across cameras."""
    c = view.c
    start = since.replace(tzinfo=None)
    cond = c.hour >= start if "hour" in c else c.day >= start.date()
    sums: Counter[Any] = Counter()
    with engine.connect() as conn:
        for key, n in conn.execute(select(c[label], c.visits).where(c.store_id == "ks", cond)):
            sums[key] += n
    return dict(sums)


def _views(engine: Engine, since: str) -> tuple[str, ...]:
    t = datetime.fromisoformat(since)
    return tuple(repr(_sums(engine, view, label, t)) for view, label in [
        (report_visits_hourly, "hour"), (report_visits_daily, "day"),
        (report_dwell_daily, "dwell_band"), (report_age_daily, "age_bracket"),
        (report_gender_daily, "gender"), (report_emotion_daily, "emotion"),
        (report_attention_daily, "looked")]) + (_attention_means(engine, t),)


def _attention_means(engine: Engine, since: datetime) -> str:
    c = report_attention_daily.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.day, c.looked, c.avg_attention_s).where(
            c.store_id == "ks", c.day >= since.date()).order_by(c.day, c.looked)).all()
    return repr([(str(d), label, round(a, 3)) for d, label, a in rows])


OUTPUTS = {"report": _report, "segments": _segments, "views": None}


@pytest.mark.parametrize("busy", [False, True], ids=["as filed", "busy afternoon"])
@pytest.mark.parametrize("output", list(OUTPUTS))
def test_two_overlapping_windows_reveal_nobody(engine: Engine, db_url: str,
                                               make_visit: Callable[..., Visit], tmp_path: Path,
                                               output: str, busy: bool) -> None:
    with VisitSink(engine) as sink:
        for v in _visits(make_visit, busy):
            sink.add(v)
    write_report_settings(engine, 5, False)
    if output == "views":
        early, late = (_views(engine, w) for w in WINDOWS)
    else:
        early, late = (OUTPUTS[output](db_url, w, tmp_path) for w in WINDOWS)  # type: ignore[misc]
    assert early == late  # nothing to subtract
    # Embedded charts are compared above; their base64 is no text (it may spell "sad" by chance)
    published = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", "\n".join(early))
    for label in HER + HER_ATTENTION:
        assert label not in published, label
    if busy:  # not vacuous: the day's 31 visits are published (as a total, or summed)
        assert re.search(r"\b31\b", published), published


# -- linked tables: one shopper from a two-label table and the one-label totals ---------------

# One camera-day of 36 visits at k=5: 10 men 18-24, 10 men 25-34, 5 men 65+, 10 women 25-34 and
# one woman 65+, angry, 900 s. With suppression per table, `report` showed male 25 and 65+ 6,
# and `segments --by age_bracket,gender` showed 18-24 male 10 and 25-34 male 10: 25 - 20 = 5 men
# 65+, so 6 - 5 = one woman 65+ (and `--by emotion,gender` gave her emotion).
LINKED_DAY = datetime(2026, 11, 30, tzinfo=UTC)
PLANTED = ([("male", 21.0, "neutral")] * 10 + [("male", 30.0, "neutral")] * 10
           + [("male", 70.0, "neutral")] * 5 + [("female", 30.0, "happy")] * 10)
LABELS_ = ("age_bracket", "gender", "emotion")


def _planted(make_visit: Callable[..., Visit]) -> list[Visit]:
    out = [make_visit(store_id="ks", started_at=LINKED_DAY.replace(hour=9, minute=i % 60),
                      gender=g, age=age, emotion=e, dwell_s=30.0)
           for i, (g, age, e) in enumerate(PLANTED)]
    return out + [make_visit(store_id="ks", started_at=LINKED_DAY.replace(hour=16),
                             gender="female", age=70.0, emotion="angry", dwell_s=900.0)]


def _published(engine: Engine, k: int) -> dict[tuple[int, ...], dict[tuple[str, ...], int]]:
    """Everything the outputs publish for the day, read from them: the report's tables and
    the views (one label; they must agree), and every `segments --by` of two and three labels
    in every order (each must show the same cells)."""
    from itertools import combinations, permutations

    from audience.reports.report import build_report
    from audience.reports.segments import Period, segments
    from audience.storage.published import Window

    window = Window("UTC", LINKED_DAY.date(), LINKED_DAY.date() + timedelta(days=1))
    rep = build_report(engine, "ks", window, k=k)
    out: dict[tuple[int, ...], dict[tuple[str, ...], int]] = {}
    for i, (label, view, published) in enumerate([
            ("age_bracket", report_age_daily, rep.age), ("gender", report_gender_daily,
                                                          rep.gender),
            ("emotion", report_emotion_daily, rep.emotion)]):
        shown = _sums(engine, view, label, LINKED_DAY)
        assert shown == published.counts, label
        out[(i,)] = {(key,): n for key, n in shown.items()}
    for r in (2, 3):
        for table in combinations(range(3), r):
            seen = []
            for by in permutations(table):
                rows = segments(engine, "ks", tuple(LABELS_[i] for i in by), Period.day,
                                window, k=k)
                seen.append({tuple(row.labels[by.index(i)] for i in table): row.count
                             for row in rows if not row.suppressed})
            assert all(s == seen[0] for s in seen), table
            out[table] = seen[0]
    return out


@pytest.mark.parametrize("k", [5, 6])
def test_linked_tables_confine_nobody(engine: Engine, make_visit: Callable[..., Visit],
                                      k: int) -> None:
    from audience.storage.bounds import confined, project

    visits = _planted(make_visit)
    with VisitSink(engine) as sink:
        for v in visits:
            sink.add(v)
    write_report_settings(engine, k, False)
    joint: Counter[tuple[str, ...]] = Counter(
        (v.age_bracket or "unknown", v.gender or "unknown", v.emotion or "unknown")
        for v in visits)
    published = _published(engine, k)
    hidden = {t: set(project(joint, t)) - set(shown) for t, shown in published.items()}
    for t, shown in published.items():  # what is shown is true
        assert all(project(joint, t)[key] == n for key, n in shown.items()), t
    audited = confined(joint, hidden, k)
    assert audited.confined == [], audited.confined
    assert audited.checked > 0 and audited.shown > 0  # not vacuous: figures are published
    # The filed subtraction no longer works: the two male cells are not both shown.
    assert not {("18-24", "male"), ("25-34", "male")} <= set(published[(0, 1)])


LOOKED_ = (*LABELS_, "looked")


@pytest.mark.parametrize("k", [5, 6])
def test_linked_tables_with_looked_confine_nobody(engine: Engine,
                                                  make_visit: Callable[..., Visit],
                                                  k: int) -> None:
    """The planted day with attention measured, the lone woman its one angry watcher: every
    table of one to three of the four labels, read from the outputs (the report, its
    attention figures, the views, each `segments --by`), confines nobody."""
    from itertools import combinations

    from audience.reports.report import build_report
    from audience.reports.segments import Period, segments
    from audience.storage.bounds import confined, project
    from audience.storage.published import Window

    visits = _planted(make_visit)
    for i, v in enumerate(visits):  # she watched; of the others, two in three did
        v.watcher, v.attention_s = (True, 12.3) if i == len(visits) - 1 else (
            i % 3 != 0, 2.0 if i % 3 else 0.2)
    with VisitSink(engine) as sink:
        for v in visits:
            sink.add(v)
    write_report_settings(engine, k, False)
    joint: Counter[tuple[str, ...]] = Counter(
        (v.age_bracket or "unknown", v.gender or "unknown", v.emotion or "unknown",
         "watcher" if v.watcher else "not watching") for v in visits)
    window = Window("UTC", LINKED_DAY.date(), LINKED_DAY.date() + timedelta(days=1))
    rep = build_report(engine, "ks", window, k=k)
    assert rep.attention is not None
    one = {"age_bracket": rep.age, "gender": rep.gender, "emotion": rep.emotion,
           "looked": rep.attention.looked}
    published: dict[tuple[int, ...], dict[tuple[str, ...], int]] = {}
    for i, label in enumerate(LOOKED_):
        view = {"age_bracket": report_age_daily, "gender": report_gender_daily,
                "emotion": report_emotion_daily, "looked": report_attention_daily}[label]
        assert _sums(engine, view, label, LINKED_DAY) == one[label].counts, label
        published[(i,)] = {(key,): n for key, n in one[label].counts.items()}
    for r in (1, 2, 3):
        for table in combinations(range(4), r):
            rows = segments(engine, "ks", tuple(LOOKED_[i] for i in reversed(table)),
                            Period.day, window, k=k)
            shown = {tuple(reversed(row.labels)): row.count for row in rows
                     if not row.suppressed}
            if r == 1:
                assert shown == published[table], table
            published[table] = shown
    for t, shown in published.items():  # what is shown is true
        assert all(project(joint, t)[key] == n for key, n in shown.items()), t
    hidden = {t: set(project(joint, t)) - set(shown) for t, shown in published.items()}
    audited = confined(joint, hidden, k)
    assert audited.confined == [], audited.confined
    assert audited.checked > 0 and audited.shown > 0
    assert rep.attention.watchers > 0  # not vacuous: watchers are published


def test_privacy_audit_command(engine: Engine, db_url: str,
                               make_visit: Callable[..., Visit]) -> None:
    with VisitSink(engine) as sink:
        for v in _planted(make_visit):
            sink.add(v)
    res = _run("privacy", "audit", "--store", "ks", "--db", db_url, "--since", "2026-11-30",
               "--until", "2026-12-01")
    assert res.exit_code == 0, res.output
    assert "│ 2026-11-30 │ cam-1  │     36 │" in res.stdout, res.stdout
    assert "no cell or group is bounded to 1..4 visits" in res.stdout
    res = _run("privacy", "audit", "--store", "nowhere", "--db", db_url)
    assert res.exit_code == 2 and "no visits for store 'nowhere'" in res.output
    assert "ks" not in res.output  # no list of the stores that exist


# -- the zone case: the report and the views must cut days in one zone -------------------------

def test_a_zone_the_views_do_not_use_is_warned(engine: Engine, db_url: str,
                                               make_visit: Callable[..., Visit],
                                               tmp_path: Path) -> None:
    from audience.storage.report_settings import write_store_time_zones

    # 30 visits on 29 November in Berlin, one more at 23:30 UTC: 30 November in Berlin, still
    # 29 November in UTC. A report in Berlin and views in UTC would differ by her.
    with VisitSink(engine) as sink:
        for i in range(30):
            sink.add(make_visit(store_id="ks", started_at=DAY.replace(hour=12, minute=i)))
        sink.add(make_visit(store_id="ks", started_at=DAY.replace(hour=23, minute=30),
                            gender="male", age=70.0))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("report:\n  timezones:\n    ks: Europe/Berlin\n")
    args = ["report", "--store", "ks", "--db", db_url, "--config", str(cfg), "--out",
            str(tmp_path / "r.html")]
    res = _run(*args)
    assert res.exit_code == 0
    assert "warning: report.timezones puts store 'ks' in Europe/Berlin" in res.stderr
    assert "views in UTC (no zone stored for it)" in res.stderr
    write_store_time_zones(engine, {"ks": "America/New_York"})  # another zone: warned too
    assert "report_* views in America/New_York" in _run(*args).stderr
    write_store_time_zones(engine, {"ks": "Europe/Berlin"})  # what provision writes
    res = _run(*args)
    assert res.exit_code == 0 and "warning" not in res.stderr
    days = _sums(engine, report_visits_daily, "day", DAY)  # the views now cut days in Berlin
    assert sum(days.values()) == 30 and re.search(r"visits +│ +30 ", res.stdout), res.stdout


# -- the synthetic banner: only where a published day holds synthetic visits -------------------

def test_a_suppressed_synthetic_visit_sets_no_banner(engine: Engine,
                                                     make_visit: Callable[..., Visit]) -> None:
    from audience.reports.report import build_report
    from audience.storage.published import Window

    with VisitSink(engine) as sink:
        for i in range(10):  # a published day of camera visits
            sink.add(make_visit(store_id="ks", started_at=DAY.replace(hour=12, minute=i)))
        # one synthetic visit on the next day, at another camera: that camera-day is left out
        sink.add(make_visit(store_id="ks", camera_id="synthetic", model_version="synthetic",
                            started_at=DAY + timedelta(days=1, hours=10)))
    window = Window("UTC", DAY.date(), DAY.date() + timedelta(days=2))
    assert not build_report(engine, "ks", window, k=5).synthetic
    with VisitSink(engine) as sink:  # four more: the synthetic camera-day is published
        for i in range(4):
            sink.add(make_visit(store_id="ks", camera_id="synthetic", model_version="synthetic",
                                started_at=DAY + timedelta(days=1, hours=11, minutes=i)))
    assert build_report(engine, "ks", window, k=5).synthetic
