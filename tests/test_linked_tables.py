"""Suppression across linked tables: nothing a camera-day publishes, in any combination,
confines a cell or a group to 1..k-1 visits (a linear program over all of it: storage.bounds).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import combinations

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from audience.core.visit import AGE_BRACKETS, Visit
from audience.storage.bounds import Table, confined, project, tables_of
from audience.storage.published import (
    _grouped_hidden,
    hidden_cells,
    linked_hidden,
    publish,
    publish_linked,
)
from audience.storage.sink import VisitSink

AGES = (*AGE_BRACKETS, "unknown")
GENDERS = ("female", "male", "unknown")
EMOTIONS = ("neutral", "happy", "sad", "surprise", "angry", "fear", "disgust", "unknown")
Joint = dict[tuple[str, ...], int]


def random_day(seed: int) -> Joint:
    """15-80 visits, each label skewed: two heavy values, the rest a long, thin tail."""
    rng = random.Random(seed)
    n = rng.randint(15, 80)

    def weights(labels: tuple[str, ...]) -> list[float]:
        w = [rng.random() ** 3 for _ in labels]
        for i in rng.sample(range(len(labels)), 2):
            w[i] += rng.uniform(1, 4)
        return w

    wa, wg, we = weights(AGES), weights(GENDERS), weights(EMOTIONS)
    return dict(Counter((rng.choices(AGES, wa)[0], rng.choices(GENDERS, wg)[0],
                         rng.choices(EMOTIONS, we)[0]) for _ in range(n)))


LOOKED = ("watcher", "not watching", "unknown")


def random_day_looked(seed: int) -> Joint:
    """A random day (as ``random_day``) whose visitors also looked, or not, or were not
    measured: the four labels of the linked tables."""
    rng = random.Random(10_000 + seed)
    w = [rng.uniform(0.5, 3), rng.uniform(0.5, 3), rng.random() ** 3]
    out: Counter[tuple[str, ...]] = Counter()
    for key, n in random_day(seed).items():
        for _ in range(n):
            out[(*key, rng.choices(LOOKED, w)[0])] += 1
    return dict(out)


def planted_day() -> Joint:
    """The filed case: 10 men 18-24, 10 men 25-34, 5 men 65+, 10 women 25-34, one woman 65+."""
    return {("18-24", "male", "neutral"): 10, ("25-34", "male", "neutral"): 10,
            ("65+", "male", "neutral"): 5, ("25-34", "female", "neutral"): 10,
            ("65+", "female", "angry"): 1}


def published_tables(joint: Joint, k: int) -> dict[Table, set[tuple[str, ...]]]:
    """What the outputs publish, read back from them: one-label tables from ``publish`` (as
    the report and the views), the others from ``publish_linked`` (as segments) in every
    --by order. Returns each table's cells that are not shown."""
    out: dict[Table, set[tuple[str, ...]]] = {}
    for t in tables_of(len(next(iter(joint))), 3):  # segments --by takes 1 to 3 labels
        cells = project(joint, t)
        if len(t) == 1:
            shown = {(key,) for key in publish({key[0]: n for key, n in cells.items()},
                                               k).counts}
        else:
            orders = [t, t[::-1]] if len(t) == 2 else [t, (t[2], t[0], t[1])]
            views = [{tuple(key[by.index(i)] for i in t)
                      for key in publish_linked(joint, k, by).counts} for by in orders]
            assert all(v == views[0] for v in views), "a --by order changes what is shown"
            shown = views[0]
        out[t] = set(cells) - shown
    return out


def test_the_planted_day_confines_nobody() -> None:
    joint = planted_day()
    audited = confined(joint, published_tables(joint, 5), 5)
    assert audited.confined == [] and audited.checked > 0
    # As filed: 25 men - 10 - 10 = 5 men 65+, so 65+ (6) - 5 = one woman 65+.
    male_18_24_shown = ("18-24", "male") not in linked_hidden(joint, 5)[(0, 1)]
    male_25_34_shown = ("25-34", "male") not in linked_hidden(joint, 5)[(0, 1)]
    assert not (male_18_24_shown and male_25_34_shown)


def _per_table_hidden(cells: dict[tuple[str, ...], int], k: int) -> set[tuple[str, ...]]:
    """The earlier rule, table by table: hidden cells of each group hold k (or none)."""
    hidden = {key for key, n in cells.items() if n < k}
    n_dims = len(next(iter(cells)))
    groups = [list(cells)]
    for r in range(1, n_dims):
        for pos in combinations(range(n_dims), r):
            by: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
            for key in cells:
                by.setdefault(tuple(key[i] for i in pos), []).append(key)
            groups += by.values()
    changed = True
    while changed:
        changed = False
        for group in groups:
            shown = sorted((cells[key], key) for key in group if key not in hidden)
            if 0 < sum(cells[key] for key in group if key in hidden) < k and shown:
                hidden.add(shown[0][1])
                changed = True
    return hidden


def test_the_audit_finds_the_filed_attack_on_the_per_table_rule() -> None:
    joint, k = planted_day(), 5
    hidden = {t: (set(linked_hidden(joint, k)[t]) if len(t) == 1
                  else _per_table_hidden(project(joint, t), k)) for t in tables_of(3)}
    found = confined(joint, hidden, k).confined
    assert [(c.table, c.key, c.least, c.most) for c in found if len(c.table) == 2] == [
        ((0, 1), ("65+", "female"), 1, 1)]  # exactly one woman aged 65+


def test_the_group_rule_alone_can_confine_and_the_audit_repairs_it() -> None:
    # Seed 13 (and 805): rules 1-4 leave a 3-visit cell bounded to 1..4 through the
    # three-label table; rule 5 hides more.
    joint, k = random_day(13), 5
    cells = {t: project(joint, t) for t in tables_of(3)}
    assert confined(joint, _grouped_hidden(cells, k, set()), k).confined
    assert not confined(joint, linked_hidden(joint, k), k).confined


@pytest.mark.parametrize("k", [5, 3])
def test_a_thousand_random_days_confine_nobody(k: int) -> None:
    shown = cells = 0
    for seed in range(1000 if k == 5 else 200):
        joint = random_day(seed)
        hidden = published_tables(joint, k)
        audited = confined(joint, hidden, k)
        assert audited.confined == [], (seed, audited.confined)
        shown, cells = shown + audited.shown, cells + audited.cells
    assert 0.05 < shown / cells < 0.6  # something is published, not everything


@pytest.mark.parametrize("seed", range(20))
def test_one_label_tables_are_rules_1_and_2(seed: int) -> None:
    # The views compute one-label tables in SQL alone: linking must not change them.
    joint = random_day(seed)
    for t in tables_of(3)[:3]:
        cells = {key[0]: n for key, n in project(joint, t).items()}
        assert linked_hidden(joint, 5)[t] == {(key,) for key in hidden_cells(cells, 5)}


def test_the_audit_command_reports_a_breach(engine: Engine, db_url: str,
                                            make_visit: Callable[..., Visit],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's audit has teeth: given the per-table rule, it finds the filed woman."""
    import audience.storage.audit as audit
    from audience.cli import app

    day = datetime(2026, 11, 30, 9, tzinfo=UTC)
    with VisitSink(engine) as sink:
        i = 0
        for (age, gender, emotion), n in planted_day().items():
            for _ in range(n):
                sink.add(make_visit(store_id="ks", age_bracket=age, gender=gender,
                                    emotion=emotion, started_at=day + timedelta(minutes=i)))
                i += 1

    def per_table(joint: Joint, k: int) -> dict[Table, set[tuple[str, ...]]]:
        return {t: (set(linked_hidden(joint, k)[t]) if len(t) == 1
                    else _per_table_hidden(project(joint, t), k)) for t in tables_of(3)}

    monkeypatch.setattr(audit, "linked_hidden", per_table)
    res = CliRunner().invoke(app, ["privacy", "audit", "--store", "ks", "--db", db_url])
    assert res.exit_code == 1, res.output
    assert "BREACH 2026-11-30 cam-1: age_bracket,gender 65+/female (1 visits) is bounded to " \
        "1..1" in res.stdout


@pytest.mark.parametrize("k", [5, 3])
def test_random_days_with_looked_confine_nobody(k: int) -> None:
    """Four labels: every table of one to three of them (each --by order) and the day total,
    audited over the full combinations of all four (the table of four is never published)."""
    shown = cells = 0
    for seed in range(200 if k == 5 else 60):
        joint = random_day_looked(seed)
        hidden = published_tables(joint, k)
        assert len(hidden) == 14
        audited = confined(joint, hidden, k)
        assert audited.confined == [], (seed, audited.confined)
        shown, cells = shown + audited.shown, cells + audited.cells
    assert 0.05 < shown / cells < 0.6  # something is published, not everything


@pytest.mark.parametrize("seed", range(20))
def test_one_label_tables_stay_rules_1_and_2_with_looked(seed: int) -> None:
    joint = random_day_looked(seed)
    for t in tables_of(4)[:4]:
        cells = {key[0]: n for key, n in project(joint, t).items()}
        assert linked_hidden(joint, 5)[t] == {(key,) for key in hidden_cells(cells, 5)}


@pytest.mark.parametrize("value", ["unknown", "watcher"])
@pytest.mark.parametrize("seed", range(10))
def test_a_label_with_one_value_hides_what_its_twin_hides(seed: int, value: str) -> None:
    """A day where looked has one value (visits stored before attention was measured): each
    table with looked hides exactly what the same table without it hides on the three-label
    day, and the looked table alone shows the day total."""
    three = random_day(seed)
    four = {(*key, value): n for key, n in three.items()}
    by3, by4 = linked_hidden(three, 5), linked_hidden(four, 5)
    assert set(by4) == set(tables_of(4, 3))
    for t in tables_of(4, 3):
        twin = tuple(i for i in t if i != 3)
        want = {tuple(value if i == 3 else key[twin.index(i)] for i in t)
                for key in by3.get(twin, ())}
        assert by4[t] == want, t
    assert not confined(four, by4, 5).confined


def test_four_labels_are_refused() -> None:
    from audience.reports.segments import parse_dimensions

    with pytest.raises(ValueError, match="1 to 3"):
        parse_dimensions("age_bracket,gender,emotion,looked")
