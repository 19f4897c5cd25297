"""The dashboards' share table: corrected shares with 90% intervals, as `audience report` has.

EM correction and a bootstrap interval cannot run in SQL, so this fills ``share_estimates``
(migration 0009) in Python, through the code the report uses: ``storage.published`` reads
and k-suppresses the cells, ``reports.intervals.breakdown_shares`` corrects the shown labelled
cells of each breakdown. So only published cells enter a share, and a label whose cells are
hidden gets no row.

Per store it writes one set of rows per store-local day of the window, and one for the whole
window (its first day to today) when it spans more than one day. k and the time zone are the
ones the ``report_*`` views use (``report_settings``, ``store_utc_offsets``, written by
`audience dashboards provision`), and each row records them: the dashboards' view shows only
the rows of the current ones. Filling is idempotent: the window's day rows of a store are
replaced in one transaction, and its earlier whole-window rows by the new window's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, insert, or_

from audience.core.shares import Confusion
from audience.core.visit import AGE_BRACKETS
from audience.reports import intervals
from audience.storage.db import storage_errors
from audience.storage.published import UNKNOWN, Published, Window, breakdown, daily
from audience.storage.report_settings import read_report_settings, read_store_time_zones
from audience.storage.schema import ShareEstimateRow
from audience.storage.timezones import local_day, zone

log = logging.getLogger(__name__)

#: The published breakdowns, in the order the report shows them; ethnicity only where enabled.
HEADS = ("age_bracket", "gender", "emotion")
ETHNICITY = "ethnicity"


@dataclass(frozen=True, slots=True)
class Filled:
    """What one store's fill wrote."""

    store: str
    days: int  #: store-local days with published visits in the window
    rows: int  #: rows written (days and the whole window)
    first: date | None  #: the window's first day (None: the store's first visit)
    last: date  #: today in the store's time zone
    k: int
    time_zone: str


def rows_of(store: str, first: date, last: date, published: Mapping[str, Published],
            matrices: Mapping[str, Confusion], k: int, time_zone: str,
            computed_at: datetime) -> list[dict[str, object]]:
    """The rows of one store and period: one per published label of each breakdown with at
    least one shown visit (``unknown`` and hidden cells never have one)."""
    period = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
    span = (last - first).days
    out: list[dict[str, object]] = []
    for h, (key, shares) in enumerate(zip(published, intervals.breakdown_shares(
            published, matrices).items(), strict=True)):
        title, est = shares
        counts = {s.label: s.count for s in est.shares}
        order = AGE_BRACKETS if key == "age_bracket" else ()
        for i, label in enumerate(intervals.display_order(counts, order)):
            s = est.get(label)
            if s is None or label == UNKNOWN or not s.count or not math.isfinite(s.share):
                continue
            out.append({
                "store_id": store, "first_day": first, "day": last, "head": title,
                "label": label, "period": period, "visits": s.count, "share": s.share,
                "share_low": s.low, "share_high": s.high, "share_text": s.text(),
                "corrected": est.corrected,
                # newest period first, a window before that day's own rows, then the report's
                # order of heads and labels
                "row_order": last.toordinal() * 100_000 + min(span, 999) * 100
                + (99 - min(h * 20 + i, 99)),
                "k": k, "time_zone": time_zone, "computed_at": computed_at})
    return out


def fill_store(engine: Engine, store: str, first: date | None, *, k: int, ethnicity: bool,
               time_zone: str, matrices: Mapping[str, Confusion],
               now: datetime | None = None) -> Filled:
    """Replace one store's rows for the days from ``first`` (None: its first visit) to today."""
    now = now or datetime.now(UTC)
    last = local_day(now, zone(time_zone))
    keys = (*HEADS, ETHNICITY) if ethnicity else HEADS
    window = Window(time_zone, first, last + timedelta(days=1))
    with storage_errors(engine, "reading the published cells from"), engine.connect() as conn:
        per_day = {key: daily(conn, store, window, [key], k, now=now) for key in keys}
        whole = {key: breakdown(conn, store, window, key, k, now=now) for key in keys}
    days = sorted(set().union(*(set(d) for d in per_day.values())))
    rows: list[dict[str, object]] = []
    for day in days:
        rows += rows_of(store, day, day, {key: per_day[key].get(day, Published())
                                          for key in keys},
                        matrices, k, time_zone, now)
    start = first if first is not None else (days[0] if days else last)
    window_rows = (rows_of(store, start, last, whole, matrices, k, time_zone, now)
                   if start < last and days else [])
    with storage_errors(engine, "writing share estimates to"), engine.begin() as conn:
        _replace(conn, store, first, rows + window_rows, bool(window_rows))
    rows += window_rows
    log.debug("share estimates of store %s: %d days, %d rows", store, len(days), len(rows))
    return Filled(store, len(days), len(rows), first, last, k, time_zone)


def _replace(conn: Connection, store: str, first: date | None, rows: list[dict[str, object]],
             window: bool) -> None:
    """Delete the store's day rows from ``first`` on, and with a new ``window`` its earlier
    whole-window rows (a fill of one day keeps the last window's); insert ``rows``."""
    t = ShareEstimateRow
    gone = t.first_day == t.day
    if first is not None:
        gone = and_(gone, t.day >= first)
    if window:
        gone = or_(gone, t.first_day < t.day)
    conn.execute(delete(t).where(t.store_id == store, gone))
    if rows:
        conn.execute(insert(t), rows)


def filling(engine: Engine, stores: Iterable[str],
            first_of: Mapping[str, date | None] | None = None, since: date | None = None,
            now: datetime | None = None, zones: Mapping[str, str] | None = None
            ) -> Iterator[Filled]:
    """Fill every store in ``stores``, one at a time (so a caller can say how each went): from
    ``first_of[store]`` when given (a day in that store's zone), else ``since``, else its first
    visit. k, ethnicity, the stores' zones (unless the caller read them: ``zones``) and the
    model's matrices are read once, before the first store; they are the views'
    (StorageError, exit 3, without the settings row)."""
    k, ethnicity = read_report_settings(engine)
    zones = read_store_time_zones(engine) if zones is None else zones
    matrices = intervals.manifest_confusions()
    for store in stores:
        yield fill_store(engine, store, (first_of or {}).get(store, since), k=k,
                         ethnicity=ethnicity, time_zone=zones.get(store, "UTC"),
                         matrices=matrices, now=now)


def fill(engine: Engine, stores: Iterable[str], first_of: Mapping[str, date | None] | None = None,
         since: date | None = None, now: datetime | None = None) -> list[Filled]:
    """``filling`` to the end: what each store's fill wrote."""
    return list(filling(engine, stores, first_of, since, now))
