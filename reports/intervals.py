"""Corrected shares and their intervals for what the reports publish (``core.shares``).

Computed from published cells only: the shown labelled cells of a breakdown. Visits without a
label and hidden cells (summed, never by label) are left out of the shares' base, so an
interval adds nothing a reader could not compute from the published counts themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from audience.core.shares import (
    INTERVAL_NOTE,
    Confusion,
    HeadShares,
    estimate,
    gender_matrix,
    joint,
    manifest_gender_min_age,
)
from audience.core.shares import manifest_confusions as _manifest_confusions
from audience.storage.published import UNKNOWN, Published

#: A report's breakdown -> the model head whose confusion corrects it.
HEADS = {"age_bracket": "age_bracket", "gender": "gender", "emotion": "emotion"}
#: Fixed, so that the same published counts always print the same interval.
SEED = 0

#: A breakdown -> the title its shares are published under (report tables, dashboards).
TITLES = {"age_bracket": "Age brackets", "gender": "Gender", "emotion": "Emotion",
          "ethnicity": "Ethnicity"}

__all__ = ["INTERVAL_NOTE", "TITLES", "breakdown_shares", "display_order", "head_shares",
           "manifest_confusions", "notes", "segment_note", "segment_shares"]


def display_order(counts: Mapping[str, int], order: Sequence[str] = ()) -> list[str]:
    """Labels as the reports list them: a natural ``order`` first (age brackets youngest
    first) with any others after it, else biggest first."""
    if order:
        keys = [key for key in order if key in counts]
        return keys + sorted(set(counts) - set(keys))
    return sorted(counts, key=lambda key: (-counts[key], key))


def manifest_confusions() -> dict[str, Confusion]:
    """The shipped model's confusion matrices (the reports' default)."""
    return _manifest_confusions()


def head_shares(p: Published, head: str, matrices: Mapping[str, Confusion],
                ages: HeadShares | None = None) -> HeadShares:
    """Shares of ``head``'s shown labelled cells (unknown and hidden cells left out). Gender
    with ``ages`` (the same report's age shares): its matrix weighted by that age mix."""
    counts = {str(key): n for key, n in p.counts.items() if key != UNKNOWN and n > 0}
    matrix = matrices.get(HEADS.get(head, head))
    if matrix is not None and ages is not None and head == "gender":
        matrix = gender_matrix(matrix, ages, manifest_gender_min_age())
    return estimate(head, counts, matrix, seed=SEED)


def breakdown_shares(published: Mapping[str, Published], matrices: Mapping[str, Confusion],
                     ) -> dict[str, HeadShares]:
    """The shares of one period's published breakdowns, keyed by title (``TITLES``), in the
    order given: ``published`` maps a breakdown (age_bracket, gender, emotion, ethnicity) to
    its published cells. Gender is weighted by the same period's age shares when given. What
    `audience report` prints and the dashboards' share table holds are both this."""
    ages = (head_shares(published["age_bracket"], "age_bracket", matrices)
            if "age_bracket" in published else None)
    out = {}
    for key, p in published.items():
        out[TITLES[key]] = ages if key == "age_bracket" and ages is not None else head_shares(
            p, key, matrices, ages if key == "gender" else None)
    return out


def segment_shares(counts: Mapping[tuple[str, ...], int], by: tuple[str, ...],
                   matrices: Mapping[str, Confusion]) -> HeadShares:
    """Shares of label combinations among one period's shown, fully labelled cells; the
    combinations' confusion multiplies the heads' (``core.shares.joint``)."""
    known = {" / ".join(key): n for key, n in counts.items() if UNKNOWN not in key and n > 0}
    parts = [matrices.get(HEADS.get(d, d)) for d in by]
    return estimate(" x ".join(by), known, joint(parts), seed=SEED)


def segment_note(by: tuple[str, ...], matrices: Mapping[str, Confusion]) -> str:
    """What the segments' intervals include, in one line."""
    combined = joint([matrices.get(HEADS.get(d, d)) for d in by])
    if combined is None:
        return (f"{INTERVAL_NOTE} Not corrected: the model ships no confusion matrix for "
                f"{' x '.join(by)}; the intervals are sampling error only.")
    return f"{INTERVAL_NOTE} Corrected for the model's confusion ({combined.source})."


def notes(shares: list[HeadShares]) -> list[str]:
    """The interval note, then one line per head on what its interval includes."""
    return [INTERVAL_NOTE, *(s.note for s in shares)]
