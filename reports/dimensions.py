"""The choices of `audience segments`: its dimensions (``--by``) and periods (``--period``).

Kept apart from ``reports.segments`` (database, plotting) so that the command line builds its
options and checks ``--by`` without loading either.
"""

from __future__ import annotations

from enum import StrEnum

from audience.storage.labels import LABELS, MOST_LABELS

DIMENSIONS = LABELS  # looked: watcher, not watching or unknown


class Period(StrEnum):
    day = "day"
    week = "week"


def parse_dimensions(text: str) -> tuple[str, ...]:
    """'age_bracket,gender' -> ('age_bracket', 'gender'); ValueError naming the allowed ones."""
    dims = tuple(d.strip() for d in text.split(",") if d.strip())
    allowed = ", ".join(DIMENSIONS)
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension {', '.join(map(repr, unknown))}: choose 1 to 3 of "
                         f"{allowed}")
    if not dims or len(set(dims)) != len(dims) or len(dims) > MOST_LABELS:
        raise ValueError(f"give 1 to 3 distinct dimensions from {allowed}, comma-separated")
    return dims
