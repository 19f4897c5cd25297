"""``audience privacy audit``: bound every cell a store's outputs publish, per camera-day.

For each camera and store-local day in a window, everything any output publishes for it is
put together: the one-label tables (report, one-label ``segments``, the ``report_*`` views,
the passers-by and watchers), every ``segments --by`` of two or three labels (age bracket,
gender, emotion, looked), and the day total, as one set of linked tables; passers-by and
watchers per hour with footfall per hour and the looked totals, as a second set; dwell bands
and ethnicity (the views) each on their own, as they share nothing but the total. A linear
program (``storage.bounds``) then bounds every cell of 1..k-1 visits that is not shown; a
cell the published figures confine to 1..k-1 is a breach.

The second set shares only the looked totals with the first, and those are shown or hidden
by the same rules in both (rules 1 and 2); the two programs are solved apart, as one over
hours and every label together would have thousands of unknowns per camera-day.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from audience.storage.bounds import Audited, Confined, Table, confined, project
from audience.storage.published import (
    LABELS,
    Bind,
    Key,
    Window,
    hidden_cells,
    hour_looked_cells,
    hourly_hidden,
    linked_hidden,
    read_cells,
)

ON_THEIR_OWN = ("dwell_band", "ethnicity")  #: partitions that share only the total
HOURLY = ("hour", "looked")  #: the table names of the hourly set


@dataclass(frozen=True, slots=True)
class Breach:
    table: str  #: labels joined by "," ("age_bracket,gender", "hour,looked"), or "dwell_band"
    found: Confined


@dataclass(slots=True)
class DayAudit:
    camera: str
    day: date
    visits: int
    cells: int = 0  #: non-empty cells of every published table
    shown: int = 0
    checked: int = 0  #: cells of 1..k-1 visits not shown, each bounded
    breaches: list[Breach] = field(default_factory=list)

    @property
    def published(self) -> bool:
        return self.cells > 0


def _add(out: DayAudit, audited: Audited, names: tuple[str, ...]) -> None:
    out.cells += audited.cells
    out.shown += audited.shown
    out.checked += audited.checked
    out.breaches += [Breach(",".join(names[i] for i in c.table), c)
                     for c in audited.confined]


def audit_day(camera: str, day: date, joint: Mapping[tuple[str, ...], int],
              own: Mapping[str, Mapping[Key, int]], k: int,
              hourly: Mapping[Key, int] | None = None) -> DayAudit:
    """One camera-day: ``joint`` visits per combination of LABELS; ``own``: the partitions
    published on their own (name -> cells), 'hour' among them (footfall); ``hourly``: visits
    per (hour as text, looked), audited with footfall and the looked totals."""
    out = DayAudit(camera, day, sum(joint.values()))
    if out.visits < k:  # nothing of the day is published
        return out
    _add(out, confined(joint, linked_hidden(joint, k), k), LABELS)
    hours = own.get("hour", {})
    if hourly:
        looked = LABELS.index("looked")
        totals = {key[0]: n for key, n in project(joint, (looked,)).items()}
        grid: dict[tuple[str, ...], int] = {key: n for key, n in hourly.items()}
        _add(out, confined(grid, {
            (0,): {(_text(h),) for h in hidden_cells(hours, k)},
            (1,): {(key,) for key in hidden_cells(totals, k)},  # as ``attention`` shows
            (0, 1): hourly_hidden(grid, k)}, k), HOURLY)
    for name, cells in own.items():
        if cells and not (name == "hour" and hourly):
            one: dict[tuple[str, ...], int] = {(_text(key),): n for key, n in cells.items()}
            alone: dict[Table, set[tuple[str, ...]]] = {
                (0,): {(_text(key),) for key in hidden_cells(cells, k)}}
            _add(out, confined(one, alone, k), (name,))
    return out


def _text(key: Key) -> str:
    """A cell's key as the grids write it (an hour: 'YYYY-MM-DD HH:MM:SS')."""
    return key.isoformat(sep=" ") if isinstance(key, datetime) else str(key)


def audit_store(bind: Bind, store: str, window: Window, k: int) -> Iterator[DayAudit]:
    """Every camera-day of the store in the window, oldest first."""
    joint = read_cells(bind, store, window, LABELS)
    hourly = hour_looked_cells(bind, store, window)
    own = {"hour": read_cells(bind, store, window, hourly=True),
           **{name: read_cells(bind, store, window, [name]) for name in ON_THEIR_OWN}}
    for camera, day in sorted(joint, key=lambda cd: (cd[1], cd[0])):
        yield audit_day(camera, day, joint[(camera, day)],
                        {name: cells.get((camera, day), {}) for name, cells in own.items()}, k,
                        hourly.get((camera, day)))
