"""What reports may publish: k-suppressed cells at one fixed grain, and sums of them only.

A *cell* is the visits of one store, one camera and one store-local day with one label (an
age bracket, a gender, an emotion, a dwell band, a label combination for segments) or, for
footfall, one local hour. A *partition* is the cells of one (store, camera, local day). The
``report_*`` views (migration 0004) publish exactly these cells under exactly these rules:

1. primary: a cell under k is hidden; a partition whose total is under k is left out whole;
2. complementary: while the hidden cells of a partition hold fewer than k visits together,
   the smallest shown cell (ties by label, byte order) is hidden too.

Every figure ``audience report`` and ``audience segments`` print is a **sum of published
cells**: a window is a whole number of local days, and a window's "female" is the sum of the
female cells shown in its days. So two windows differ by whole published cells, and nothing a
reader subtracts (windows, reports, views, CSV) uncovers a hidden cell. Hidden cells of
published partitions are only ever reported together, as one "suppressed" figure per window
(at least k visits per partition by rule 2), never by label.

Label combinations (``segments --by`` of two or three of the labels age bracket, gender,
emotion and looked) are linked tables: each is a margin of the others and of the one-label
tables, so they are chosen together, for every table a camera-day can publish at once
(``linked_hidden``, rules 3 to 5): no group whose total is shown has a single hidden cell, and
a linear program over all of them (``storage.bounds``) confines no cell or group to 1..k-1
visits. The one-label tables (the report's, the passers-by and watchers) stay rules 1 and 2
alone, so the views compute exactly them in SQL; dwell bands share nothing with the labels but
the day total, and rules 1 and 2 protect them on their own. Hours share the day total with the
labels, and the looked totals with passers-by and watchers per hour (``hourly_hidden``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import combinations
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text

from audience.storage.bounds import Cells, Table, confined, project, tables_of
from audience.storage.db import connected
from audience.storage.demo_data import SYNTHETIC
from audience.storage.labels import LABELS, MOST_LABELS, UNKNOWN
from audience.storage.schema import UTCDateTime
from audience.storage.sqltime import dwell_band_expr, local_expr, ts_literal
from audience.storage.timezones import (
    TABLE_SPAN,
    day_start,
    offset_periods,
    utc_offset_min,
    zone,
)

Bind = Engine | Connection
LOOKED_SQL = ("CASE WHEN watcher IS NULL THEN 'unknown' WHEN watcher THEN 'watcher' "
              "ELSE 'not watching' END")
WATCHER = "watcher"
Key = Any  # a label, a local hour (naive datetime) or a tuple of labels


@dataclass(frozen=True, slots=True)
class Window:
    """Whole store-local days ``[first, end)``; None: from the first visit / up to now."""

    time_zone: str = "UTC"
    first: date | None = None
    end: date | None = None

    def bounds(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        tz = zone(self.time_zone)
        lo = day_start(self.first, tz) if self.first else TABLE_SPAN[0]
        hi = (day_start(self.end, tz) if self.end
              else (now or datetime.now(UTC)) + timedelta(days=1))
        return lo, max(lo, hi)


@dataclass(slots=True)
class Published:
    """Sums over a window of the cells a breakdown publishes."""

    counts: dict[Key, int] = field(default_factory=dict)  #: shown cells summed per key
    suppressed: int = 0  #: hidden cells of published partitions, summed (never by key)
    total: int = 0  #: visits of published partitions (= sum of counts + suppressed)

    def add(self, other: Published) -> None:
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.suppressed += other.suppressed
        self.total += other.total


def _order(key: Key) -> str:
    return "\x1f".join(key) if isinstance(key, tuple) else str(key)


def hidden_cells(cells: Mapping[Key, int], k: int,
                 margins: Sequence[Sequence[int]] = (), forced: Iterable[Key] = ()) -> set[Key]:
    """The keys of ``cells`` (one partition) to hide under rules 1 and 2.

    ``margins``: for tuple keys, groups of label positions whose subtotals must be protected
    like the partition's total (segments). Ties between equally small cells: label order.
    ``forced``: cells hidden from the start (those another output hides: see ``looked_hourly``).
    """
    if sum(cells.values()) < k:
        return set(cells)
    hidden = {key for key, n in cells.items() if n < k} | (set(forced) & set(cells))
    groups: list[list[Key]] = [list(cells)]
    for pos in margins:
        by: dict[tuple[Any, ...], list[Key]] = defaultdict(list)
        for key in cells:
            by[tuple(key[i] for i in pos)].append(key)
        groups += by.values()
    changed = True
    while changed:  # hiding one cell can expose another group: repeat until stable
        changed = False
        for group in groups:
            held = sum(cells[key] for key in group if key in hidden)
            shown = [key for key in group if key not in hidden]
            if 0 < held < k and shown:
                hidden.add(min(shown, key=lambda key: (cells[key], _order(key))))
                changed = True
    return hidden


def margins_of(n_dims: int) -> list[tuple[int, ...]]:
    """Every proper, non-empty subset of label positions (1 and 2 of 3)."""
    return [c for r in range(1, n_dims) for c in combinations(range(n_dims), r)]


def publish(cells: Mapping[Key, int], k: int) -> Published:
    """One partition's published figures: shown cells, the hidden ones summed."""
    total = sum(cells.values())
    if total < k:
        return Published()
    hidden = hidden_cells(cells, k)
    return Published({key: n for key, n in cells.items() if key not in hidden},
                     sum(cells[key] for key in hidden), total)


# -- linked tables: every label combination of one camera-day ------------------------------------

def linked_hidden(joint: Cells, k: int) -> dict[Table, set[tuple[str, ...]]]:
    """The hidden cells of every table a camera-day can publish, chosen together.

    ``joint``: the day's visits per full label combination (one label per position of
    LABELS). Returns, per table (label positions) of one to MOST_LABELS labels, the keys it
    hides; every cell when the day has fewer than k visits.

    One-label tables follow rules 1 and 2 alone (the views compute them in SQL). A table of
    two or three labels then hides, until nothing changes:

    3. every cell under k, and every cell whose margin in a smaller table is hidden (a shown
       part of a hidden cell would bound it from below);
    4. in every group of its cells that share some labels (a row, a column, a slice, the
       whole table) whose total another table shows: no cell, or at least two non-empty cells
       holding k or more visits together; else the smallest shown cell of the group (ties by
       label) is hidden too. So no group has a single hidden cell, which its total minus its
       shown cells would give away.
    5. the audit: a linear program over all these tables together (``storage.bounds``); while
       it confines some cell or group to 1..k-1 visits, the smallest shown cell of two or
       three labels next to it is hidden too (rule 4 leaves such a cell on a few days in a
       thousand). Hiding every such cell publishes the one-label tables alone, which
       confine nothing: so this ends, and nothing published is confined.
    """
    found = _linked(frozenset((key, n) for key, n in joint.items() if n), k)
    return {t: set(keys) for t, keys in found.items()}


@lru_cache(maxsize=512)  # outputs and the audit ask for the same camera-days
def _linked(items: frozenset[tuple[tuple[str, ...], int]], k: int,
            ) -> dict[Table, frozenset[tuple[str, ...]]]:
    joint = dict(items)
    n_dims = len(next(iter(joint))) if joint else len(LABELS)
    # A label with one value that day (looked is 'unknown' on every visit stored before
    # attention was measured) splits nothing: a table with it repeats the table without it
    # cell for cell. So the rule runs on the other labels alone, a smaller linear program,
    # and each table with the label hides what its twin without it hides.
    varied = [i for i in range(n_dims) if len({key[i] for key in joint}) > 1]
    if sum(joint.values()) < k or len(varied) == n_dims:
        return {t: frozenset(keys) for t, keys in _linked_hidden(joint, k).items()}
    fixed = next(iter(joint)) if joint else ()
    found = _linked_hidden(project(joint, tuple(varied)), k) if varied else {}
    out: dict[Table, frozenset[tuple[str, ...]]] = {}
    for t in tables_of(n_dims, MOST_LABELS):
        twin = tuple(varied.index(i) for i in t if i in varied)
        out[t] = frozenset(  # () when t has fixed labels only: its one cell is the total
            tuple(key[twin.index(varied.index(i))] if i in varied else fixed[i] for i in t)
            for key in found.get(twin, ()))
    return out


def _linked_hidden(joint: Cells, k: int) -> dict[Table, set[tuple[str, ...]]]:
    n_dims = len(next(iter(joint))) if joint else len(LABELS)
    tables = tables_of(n_dims, MOST_LABELS)  # the table of all four is never published
    cells = {t: project(joint, t) for t in tables}
    if sum(joint.values()) < k:
        return {t: set(cells[t]) for t in tables}
    forced: set[tuple[Table, tuple[str, ...]]] = set()
    while True:
        hidden = _grouped_hidden(cells, k, forced)
        if all(hidden[t] >= set(cells[t]) for t in tables if len(t) > 1):
            return hidden  # one-label tables alone confine nothing: no program to solve
        found = confined(joint, hidden, k).confined
        if not found:
            return hidden
        spot = found[0]
        nearby = [(sum(a != b for a, b in _common(spot.table, spot.key, t, key)), n, _order(key),
                   t, key)
                  for t in tables if len(t) > 1
                  for key, n in cells[t].items() if key not in hidden[t]]
        if not nearby:  # cannot happen (see above); never loop
            return {t: set(cells[t]) if len(t) > 1 else hidden[t] for t in tables}
        *_, t, key = min(nearby)
        forced.add((t, key))


def _common(t1: Table, k1: tuple[str, ...], t2: Table, k2: tuple[str, ...],
            ) -> list[tuple[str, str]]:
    """The labels of two cells at the positions both tables have."""
    return [(k1[t1.index(i)], k2[t2.index(i)]) for i in t1 if i in t2]


def _grouped_hidden(cells: Mapping[Table, Mapping[tuple[str, ...], int]], k: int,
                    forced: set[tuple[Table, tuple[str, ...]]],
                    ) -> dict[Table, set[tuple[str, ...]]]:
    """Rules 1 and 2 for one-label tables, then 3 and 4 (plus ``forced`` cells) for the rest."""
    hidden: dict[Table, set[tuple[str, ...]]] = {}
    # groups[t]: (margin table, () for the day total; the margin's key; the group's keys)
    groups: dict[Table, list[tuple[Table, tuple[str, ...], list[tuple[str, ...]]]]] = {}
    for t, tc in cells.items():
        if len(t) == 1:
            hidden[t] = {(key,) for key in hidden_cells({key[0]: n for key, n in tc.items()}, k)}
            continue
        hidden[t] = {key for key, n in tc.items() if n < k or (t, key) in forced}
        groups[t] = []
        for r in range(len(t)):
            for sub in combinations(range(len(t)), r):
                by: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
                for key in sorted(tc, key=_order):
                    by[tuple(key[i] for i in sub)].append(key)
                groups[t] += [(tuple(t[i] for i in sub), mkey, keys)
                              for mkey, keys in sorted(by.items())]
    changed = True
    while changed:
        changed = False
        for t, tgroups in groups.items():
            tc, th = cells[t], hidden[t]
            for margin, mkey, keys in tgroups:
                if margin and mkey in hidden[margin]:
                    fresh = [key for key in keys if key not in th]
                    th.update(fresh)
                    changed = changed or bool(fresh)
                    continue
                held = [key for key in keys if key in th]
                if held and (len(held) < 2 or sum(tc[key] for key in held) < k):
                    shown = [key for key in keys if key not in th]
                    if shown:
                        th.add(min(shown, key=lambda key: (tc[key], _order(key))))
                        changed = True
    return hidden


def publish_linked(joint: Cells, k: int,
                   by: Sequence[int]) -> Published:
    """One camera-day's published figures for the table of label positions ``by`` (in that
    order, keys as tuples), its cells hidden as ``linked_hidden`` chooses for all tables."""
    total = sum(joint.values())
    if total < k:
        return Published()
    table = tuple(sorted(by))
    hidden = linked_hidden(joint, k)[table]
    perm = [table.index(i) for i in by]
    counts = {tuple(key[i] for i in perm): n
              for key, n in project(joint, table).items() if key not in hidden}
    return Published(counts, total - sum(counts.values()), total)


# -- reading cells -------------------------------------------------------------------------------

def _offset_sql(dialect: str, time_zone: str, lo: datetime, hi: datetime) -> str:
    """The store's UTC offset in minutes at ``started_at``, as SQL, for a window [lo, hi)."""
    tz = zone(time_zone)
    lo = min(max(lo, TABLE_SPAN[0]), TABLE_SPAN[1])  # like the views: offsets known 1990-2100
    hi = max(min(hi, TABLE_SPAN[1]), lo)
    periods = offset_periods(tz, lo, hi)
    if len(periods) <= 1:
        return str(utc_offset_min(tz, lo))
    whens = " ".join(f"WHEN started_at < {ts_literal(dialect, until)} THEN {off}"
                     for _, until, off in periods[:-1])
    return f"CASE {whens} ELSE {periods[-1][2]} END"


def _key_sql(key: str) -> str:
    if key == "dwell_band":
        return dwell_band_expr()
    if key == "looked":
        return LOOKED_SQL
    if key in (*LABELS, "ethnicity"):
        return f"COALESCE({key}, '{UNKNOWN}')"
    if key == "source":  # generated by `audience demo-data`, or seen by a camera
        return f"CASE WHEN model_version = '{SYNTHETIC}' THEN '{SYNTHETIC}' ELSE 'camera' END"
    raise ValueError(f"unknown breakdown {key!r}")


def read_cells(bind: Bind, store: str, window: Window, keys: Sequence[str] = (),
               hourly: bool = False, now: datetime | None = None,
               ) -> dict[tuple[str, date], dict[Key, int]]:
    """Raw cell counts per partition (camera, local day) for ``keys`` (labels, or
    'dwell_band'); ``hourly``: keyed by local hour instead. No keys: the day's total under
    the key ``None``. Nothing here is suppressed yet: use ``publish``."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    dialect = engine.dialect.name
    lo, hi = window.bounds(now)
    off = _offset_sql(dialect, window.time_zone, lo, hi)
    exprs = [local_expr(dialect, "day", "started_at", off)]
    exprs += ([local_expr(dialect, "hour", "started_at", off)] if hourly
              else [_key_sql(key) for key in keys])
    cols = ", ".join(exprs)
    stmt = text(f"SELECT camera_id, {cols}, count(*) FROM visits "  # noqa: S608 - no user text
                f"WHERE store_id = :store AND started_at >= :lo AND started_at < :hi "
                f"GROUP BY camera_id, {cols}").bindparams(
        bindparam("lo", type_=UTCDateTime()), bindparam("hi", type_=UTCDateTime()))
    out: dict[tuple[str, date], dict[Key, int]] = defaultdict(dict)
    with connected(bind, "reading report cells from") as conn:
        for camera, day, *rest in conn.execute(stmt, {"store": store, "lo": lo, "hi": hi}):
            *labels, n = rest
            d = date.fromisoformat(day) if isinstance(day, str) else day
            if hourly:
                h = labels[0]
                key: Key = datetime.fromisoformat(h) if isinstance(h, str) else h
            elif not keys:
                key = None
            else:
                key = labels[0] if len(keys) == 1 else tuple(labels)
            out[(camera, d)][key] = int(n)
    return dict(out)


def holds_synthetic(bind: Bind, store: str, window: Window, k: int,
                    now: datetime | None = None) -> bool:
    """Whether a published camera-day (k or more visits, so at least its total is shown)
    holds synthetic visits: a yes/no for the demo banner, which a day left out must not set
    (it would say that someone, or something, was there)."""
    days = read_cells(bind, store, window, ["source"], now=now).values()
    return any(sum(cells.values()) >= k and SYNTHETIC in cells for cells in days)


def published_sum(partitions: Iterable[Mapping[Key, int]], k: int) -> Published:
    """Publish each partition, then add them up."""
    acc = Published()
    for cells in partitions:
        acc.add(publish(cells, k))
    return acc


def breakdown(bind: Bind, store: str, window: Window, key: str, k: int,
              now: datetime | None = None) -> Published:
    """A window's published figures for one label (or 'dwell_band'), all cameras."""
    return published_sum(read_cells(bind, store, window, [key], now=now).values(), k)


def footfall(bind: Bind, store: str, window: Window, k: int,
             now: datetime | None = None) -> Published:
    """Visits per local hour (naive datetimes), all cameras; hidden hours summed."""
    return published_sum(read_cells(bind, store, window, hourly=True, now=now).values(), k)


def daily(bind: Bind, store: str, window: Window, keys: Sequence[str], k: int,
          now: datetime | None = None) -> dict[date, Published]:
    """Published label combinations per local day (all cameras): one label by rules 1 and 2,
    two or three as ``linked_hidden`` chooses for every table of the camera-day."""
    out: dict[date, Published] = defaultdict(Published)
    if len(keys) == 1:
        for (_, day), cells in read_cells(bind, store, window, keys, now=now).items():
            out[day].add(publish(cells, k))
    else:  # every table of the day is chosen together: read the full label combinations
        by = [LABELS.index(key) for key in keys]
        for (_, day), joint in read_cells(bind, store, window, LABELS, now=now).items():
            out[day].add(publish_linked(joint, k, by))
    return {day: p for day, p in sorted(out.items()) if p.total}


# -- attention: passers-by, watchers, attention time -------------------------------------------

@dataclass(slots=True)
class Attention:
    """A window's published attention figures (all cameras). Passers-by are every visitor
    (``looked.total``); watchers the shown 'watcher' cells; mean attention time is over
    those watchers only (seconds summed over the same shown cells)."""

    looked: Published  #: keys: 'watcher', 'not watching', 'unknown'
    watcher_seconds: float  #: attention_s summed over the shown 'watcher' cells

    @property
    def passers_by(self) -> int:
        return self.looked.total

    @property
    def watchers(self) -> int:
        return self.looked.counts.get(WATCHER, 0)

    @property
    def rate(self) -> float | None:
        """Watchers per passer-by (hidden watcher cells count as not watching)."""
        return self.watchers / self.passers_by if self.passers_by else None

    @property
    def mean_attention_s(self) -> float | None:
        return self.watcher_seconds / self.watchers if self.watchers else None


def attention(bind: Bind, store: str, window: Window, k: int,
              now: datetime | None = None) -> Attention:
    """Passers-by, watchers and the watchers' attention time over a window: the 'looked'
    breakdown under the usual rules, and the seconds of the watcher cells it shows."""
    counts = read_cells(bind, store, window, ["looked"], now=now)
    seconds = _watcher_seconds(bind, store, window, now)
    acc, total_s = Published(), 0.0
    for part, cells in counts.items():
        published = publish(cells, k)
        acc.add(published)
        if WATCHER in published.counts:
            total_s += seconds.get(part, 0.0)
    return Attention(acc, total_s)


def _watcher_seconds(bind: Bind, store: str, window: Window, now: datetime | None
                     ) -> dict[tuple[str, date], float]:
    """attention_s summed over each partition's watchers (read, not published: see
    ``attention``)."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    dialect = engine.dialect.name
    lo, hi = window.bounds(now)
    day = local_expr(dialect, "day", "started_at", _offset_sql(dialect, window.time_zone, lo, hi))
    stmt = text(f"SELECT camera_id, {day}, sum(attention_s) FROM visits "  # noqa: S608
                f"WHERE store_id = :store AND started_at >= :lo AND started_at < :hi "
                f"AND {LOOKED_SQL} = '{WATCHER}' GROUP BY camera_id, {day}").bindparams(
        bindparam("lo", type_=UTCDateTime()), bindparam("hi", type_=UTCDateTime()))
    out: dict[tuple[str, date], float] = {}
    with connected(bind, "reading report cells from") as conn:
        for camera, d, total in conn.execute(stmt, {"store": store, "lo": lo, "hi": hi}):
            out[(camera, date.fromisoformat(d) if isinstance(d, str) else d)] = float(total or 0)
    return out


def looked_hourly(bind: Bind, store: str, window: Window, k: int,
                  now: datetime | None = None) -> Published:
    """Passers-by and watchers per local hour: keys (hour as 'YYYY-MM-DD HH:MM:SS', looked),
    all cameras, hidden as ``hourly_hidden`` chooses."""
    acc = Published()
    for grid in hour_looked_cells(bind, store, window, now).values():
        total = sum(grid.values())
        if total < k:
            continue
        hidden = hourly_hidden(grid, k)
        acc.add(Published({key: n for key, n in grid.items() if key not in hidden},
                          sum(grid[key] for key in hidden), total))
    return acc


def hourly_hidden(grid: Mapping[Key, int], k: int) -> set[Key]:
    """The hidden cells of one camera-day's (hour, looked) grid.

    Its margins are published elsewhere: each hour's total by footfall, each label's day
    total by the attention figures and the views, both under rules 1 and 2. So the grid is a
    two-label linked table over those two one-label tables, chosen by ``linked_hidden``:
    every cell of an hour or a label they hide is hidden, no row or column is left with a
    single hidden cell (its shown total minus its shown cells would give it away), and the
    linear program confines no cell to 1..k-1 visits.
    """
    cells = {tuple(key): n for key, n in grid.items()}
    return set(linked_hidden(cells, k)[(0, 1)])


def hour_looked_cells(bind: Bind, store: str, window: Window, now: datetime | None = None
                      ) -> dict[tuple[str, date], dict[Key, int]]:
    """Raw visits per partition (camera, local day) and (local hour as text, looked)."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    dialect = engine.dialect.name
    lo, hi = window.bounds(now)
    off = _offset_sql(dialect, window.time_zone, lo, hi)
    cols = (f"{local_expr(dialect, 'day', 'started_at', off)}, "
            f"{local_expr(dialect, 'hour', 'started_at', off)}, {LOOKED_SQL}")
    stmt = text(f"SELECT camera_id, {cols}, count(*) FROM visits "  # noqa: S608 - no user text
                f"WHERE store_id = :store AND started_at >= :lo AND started_at < :hi "
                f"GROUP BY camera_id, {cols}").bindparams(
        bindparam("lo", type_=UTCDateTime()), bindparam("hi", type_=UTCDateTime()))
    out: dict[tuple[str, date], dict[Key, int]] = defaultdict(dict)
    with connected(bind, "reading report cells from") as conn:
        for camera, d, h, looked, n in conn.execute(stmt, {"store": store, "lo": lo, "hi": hi}):
            day = date.fromisoformat(d) if isinstance(d, str) else d
            hour = datetime.fromisoformat(h) if isinstance(h, str) else h
            out[(camera, day)][(_hour_key(hour), looked)] = int(n)
    return dict(out)


def _hour_key(hour: datetime) -> str:
    """A local hour as a label (cells' keys are compared and ordered as text)."""
    return hour.isoformat(sep=" ")
