"""``audience privacy audit``: bound every cell a store's outputs publish, per camera-day.

For each camera and store-local day in a window, everything any output publishes for it is
put together: the one-label tables (report, one-label ``segments``, the ``report_*`` views),
every ``segments --by`` of two or three labels, and the day total, as one set of linked
tables; footfall per hour, dwell bands and ethnicity (the views) each on their own, as they
share nothing but the total. A linear program (``storage.bounds``) then bounds every cell of
1..k-1 visits that is not shown; a cell the published figures confine to 1..k-1 is a breach.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

from audience.storage.bounds import Audited, Confined, Table, confined
from audience.storage.published import (
    LABELS,
    Bind,
    Key,
    Window,
    hidden_cells,
    linked_hidden,
    read_cells,
)

ON_THEIR_OWN = ("hour", "dwell_band", "ethnicity")  #: partitions that share only the total


@dataclass(frozen=True, slots=True)
class Breach:
    table: str  #: labels joined by "," ("age_bracket,gender"), or "hour" / "dwell_band"
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
              own: Mapping[str, Mapping[Key, int]], k: int) -> DayAudit:
    """One camera-day: ``joint`` visits per (age bracket, gender, emotion); ``own``: the
    partitions published on their own (name -> cells)."""
    out = DayAudit(camera, day, sum(joint.values()))
    if out.visits < k:  # nothing of the day is published
        return out
    _add(out, confined(joint, linked_hidden(joint, k), k), LABELS)
    for name, cells in own.items():
        if cells:
            one: dict[tuple[str, ...], int] = {(str(key),): n for key, n in cells.items()}
            hidden: dict[Table, set[tuple[str, ...]]] = {
                (0,): {(str(key),) for key in hidden_cells(cells, k)}}
            _add(out, confined(one, hidden, k), (name,))
    return out


def audit_store(bind: Bind, store: str, window: Window, k: int) -> Iterator[DayAudit]:
    """Every camera-day of the store in the window, oldest first."""
    joint = read_cells(bind, store, window, LABELS)
    own = {"hour": read_cells(bind, store, window, hourly=True),
           "dwell_band": read_cells(bind, store, window, ["dwell_band"]),
           "ethnicity": read_cells(bind, store, window, ["ethnicity"])}
    for camera, day in sorted(joint, key=lambda cd: (cd[1], cd[0])):
        yield audit_day(camera, day, joint[(camera, day)],
                        {name: cells.get((camera, day), {}) for name, cells in own.items()}, k)
