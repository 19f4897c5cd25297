"""Shares corrected for the model's known confusion, with intervals (core.shares)."""

from __future__ import annotations

import numpy as np
import pytest

from audience.core.face import Face, Track
from audience.core.shares import (
    GENDER_MIN_AGE,
    Confusion,
    ConfusionError,
    confusions,
    em_shares,
    estimate,
    gender_min_age,
)
from audience.core.visit import FaceAttributes
from audience.inference.aggregate import aggregate

GENDER_RATES = np.array([[0.92, 0.08], [0.15, 0.85]])
AGE_RATES = np.array([[0.70, 0.25, 0.05], [0.20, 0.60, 0.20], [0.05, 0.25, 0.70]])


def _confusion(rates: np.ndarray, per_class: int, rng: np.random.Generator) -> Confusion:
    counts = np.stack([rng.multinomial(per_class, r) for r in rates])
    return Confusion("h", tuple("abcdefgh"[:len(rates)]), counts, "synthetic val")


def _labels(true: np.ndarray, rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return sum(rng.multinomial(true[i], rates[i]) for i in range(len(rates)))


def test_em_recovers_a_known_mix_exactly():
    p = np.array([0.2, 0.5, 0.3])
    observed = 1000 * p @ AGE_RATES  # the expected labels, no noise
    assert em_shares(observed, AGE_RATES, iters=5000, tol=1e-12) == pytest.approx(p, abs=1e-4)


@pytest.mark.parametrize(("rates", "per_class", "visitors"), [
    (GENDER_RATES, 400, (50, 500)),  # a validation split of 800 faces, audiences of 50-500
    (AGE_RATES, 300, (100, 400)),
])
def test_intervals_cover_the_truth_about_as_often_as_they_say(rates, per_class, visitors):
    """Many seeded audiences with known mixes, each with its own validation count of the
    confusion (whose error the interval must include): the 90% interval covers the mix 85-95%
    of the time, and the corrected share is closer to it than the raw share."""
    rng = np.random.default_rng(7)
    covered, raw_err, corrected_err = [], [], []
    for seed in range(150):
        conf = _confusion(rates, per_class, rng)
        mix = rng.dirichlet(np.full(len(rates), 2.0))
        true = rng.multinomial(int(rng.integers(*visitors)), mix)
        pred = _labels(true, rates, rng)
        est = estimate("h", dict(zip(conf.classes, pred.tolist(), strict=True)), conf,
                       draws=300, seed=seed)
        assert est.corrected
        for share, t in zip(est.shares, mix, strict=True):
            covered.append(share.low <= t <= share.high)
            raw_err.append(abs(share.raw - t))
            corrected_err.append(abs(share.share - t))
    assert 0.85 <= np.mean(covered) <= 0.95
    assert np.mean(corrected_err) < np.mean(raw_err)


def test_a_head_without_a_confusion_matrix_has_sampling_error_only_and_says_so():
    est = estimate("emotion", {"happy": 23, "neutral": 17}, None, seed=1)
    assert not est.corrected
    assert "sampling error only" in est.note and "not corrected" in est.note
    happy = est.get("happy")
    assert happy is not None and happy.share == happy.raw == pytest.approx(23 / 40)
    # 23 of 40 is not 2,300 of 4,000: the interval is about +-13 points, not +-1.3
    assert 0.10 < happy.high - happy.low < 0.30
    big = estimate("emotion", {"happy": 2300, "neutral": 1700}, None, seed=1).get("happy")
    assert big is not None and big.high - big.low < 0.03
    assert happy.text() == f"57% ({100 * happy.low:.0f}-{100 * happy.high:.0f}%)"


def test_corrected_heads_say_where_their_matrix_comes_from_and_widen_the_interval():
    conf = Confusion("gender", ("male", "female"), np.array([[460, 40], [75, 425]]),
                     "utkface:val, 2.4.0")
    corrected = estimate("gender", {"male": 120, "female": 80}, conf, seed=3)
    plain = estimate("gender", {"male": 120, "female": 80}, None, seed=3)
    assert corrected.corrected and "utkface:val" in corrected.note
    f_c, f_p = corrected.get("female"), plain.get("female")
    assert f_c is not None and f_p is not None
    assert f_c.share > f_p.share  # women read as men are given back
    assert f_c.high - f_c.low > f_p.high - f_p.low


def test_labels_the_matrix_does_not_know_keep_their_raw_share():
    conf = Confusion("gender", ("male", "female"), np.array([[90, 10], [10, 90]]))
    est = estimate("gender", {"male": 50, "female": 40, "other": 10}, conf, seed=0)
    other = est.get("other")
    assert other is not None and other.share == pytest.approx(0.1)
    assert sum(s.share for s in est.shares) == pytest.approx(1.0, abs=1e-6)


def test_manifest_confusion_section_round_trips_and_rejects_nonsense():
    conf = Confusion("gender", ("male", "female"), np.array([[9, 1], [2, 8]]), "x:val")
    assert confusions({"confusion": {"gender": conf.to_json()}})["gender"].counts.tolist() == \
        [[9, 1], [2, 8]]
    assert confusions({}) == {}
    with pytest.raises(ConfusionError, match="malformed"):
        confusions({"confusion": {"gender": {"classes": ["male", "female"], "counts": [[1]]}}})


@pytest.mark.parametrize(("manifest", "configured", "expected"), [
    ({}, None, GENDER_MIN_AGE),
    ({"gender_min_age": 16}, None, 16.0),
    ({"gender_min_age": 16}, 10.0, 10.0),
])
def test_gender_min_age_comes_from_config_then_manifest_then_default(manifest, configured,
                                                                     expected):
    assert GENDER_MIN_AGE == 13.0
    assert gender_min_age(manifest, configured) == expected


@pytest.mark.parametrize(("age", "gender"), [(8.0, None), (12.9, None), (13.0, "female"),
                                             (40.0, "female")])
def test_children_get_no_gender(age, gender):
    face = Face(box=np.array([0, 0, 40, 40], np.float32), landmarks=np.zeros((5, 2)), score=0.9,
                quality=0.5)
    track = Track("cam", "store", "t1", 0.0, 2.0, 5, [face])
    attrs = [FaceAttributes(age=age, age_bracket="x", gender="female", gender_score=0.9)]
    visit = aggregate(track, attrs, "m", gender_min_age=13.0)
    assert visit.gender == gender
    assert (visit.gender_score is None) == (gender is None)
    assert visit.age == age  # the age itself is still reported


def test_gender_matrix_follows_the_age_mix():
    """Older women are read as men more often: a store of older visitors gets that bracket's
    rates; an age mix of nothing, or a matrix without strata, keeps the pooled rates."""
    young = np.array([[95, 5], [5, 95]])
    old = np.array([[95, 5], [30, 70]])
    strata = np.zeros((8, 2, 2))
    strata[3], strata[7] = young, old
    conf = Confusion("gender", ("male", "female"), young + old, "x:val", strata)
    mix = np.zeros(8)
    mix[7] = 1.0
    assert conf.by_age(mix).rates()[1, 0] == pytest.approx(0.30, abs=0.01)
    mix[:] = 0
    mix[3] = 1.0
    assert conf.by_age(mix).rates()[1, 0] == pytest.approx(0.05, abs=0.01)
    assert conf.by_age(np.zeros(8)) is conf
    plain = Confusion("gender", ("male", "female"), young + old)
    assert plain.by_age(mix) is plain
    back = confusions({"confusion": {"gender": conf.to_json()}})["gender"]
    assert back.by_age_counts is not None and back.by_age_counts[7].tolist() == old.tolist()


def test_an_uncertain_age_mix_widens_the_gender_interval():
    """The age mix a store's gender matrix is weighted by is itself estimated: where the
    brackets' gender rates differ, its uncertainty widens the gender interval; where they are
    the same, or the mix is known exactly, it changes nothing."""
    from audience.core.shares import gender_matrix, gendered_mix

    young = np.array([[900, 100], [300, 700]])
    old = np.array([[990, 10], [10, 990]])
    strata = np.zeros((8, 2, 2))
    strata[1], strata[3] = young, old  # 13-17 and 25-34
    conf = Confusion("gender", ("male", "female"), young + old, "x:val", strata)
    ages = estimate("age_bracket", {"13-17": 30, "25-34": 30}, None, draws=400)
    assert ages.draws is not None and ages.draws.shape == (400, 2)
    mix = gendered_mix(ages, 13.0)
    assert mix[[1, 3]].tolist() == [0.5, 0.5]
    assert gendered_mix(ages, 18.0)[1] == 0.0  # a bracket wholly under the rule: no gender
    widened = gender_matrix(conf, ages, 13.0)
    assert (widened.spread() > 1e-4).all()  # beside 1 / (N + 1) = 5e-4 of the counts
    np.testing.assert_allclose(widened.rates(), conf.by_age(mix).rates())  # same point
    assert np.allclose(conf.by_age(mix, np.tile(mix, (50, 1))).spread(), 0.0)
    same = np.zeros((8, 2, 2))
    same[1], same[3] = young, young
    flat = Confusion("gender", ("male", "female"), 2 * young, "x:val", same)
    assert np.allclose(gender_matrix(flat, ages, 13.0).spread(), 0.0)
    counts = {"male": 40, "female": 60}
    narrow = estimate("gender", counts, conf.by_age(mix), draws=1000).get("female")
    wide = estimate("gender", counts, widened, draws=1000).get("female")
    assert narrow is not None and wide is not None
    assert wide.high - wide.low > narrow.high - narrow.low


def test_drawn_audiences_and_split_names():
    from audience.models.data import DatasetError
    from audience.models.shares_eval import Labelled, draw_audience, parse_spec

    rng = np.random.default_rng(0)
    n = 600
    ages = rng.choice([8.0, 15.0, 30.0, 70.0], size=n)  # no 18-24, 35-64 faces in this pool
    gender = rng.integers(0, 2, n)
    lab = Labelled("x:val", ages.astype(np.float32), gender, np.full(n, -1), ages, gender * 1.0,
                   np.zeros(n, np.int64))
    for _ in range(20):
        aud = draw_audience(lab, rng)
        assert aud is not None and 50 <= len(aud.idx) <= 500 and 0.2 <= aud.female <= 0.8
        assert aud.ages.sum() == pytest.approx(1.0)
        present = set(lab.bracket[aud.idx])
        assert present <= {0, 1, 3, 7}  # only brackets the pool has
    assert parse_spec("aaf:val") == ("aaf", "val")
    for bad in ("aaf:test", "imdb:val", "utkface"):
        with pytest.raises(DatasetError):
            parse_spec(bad)


# -- several sources: the model's variation between kinds of faces --------------------------

DOMAIN_BASE = np.array([[0.90, 0.10], [0.15, 0.85]])


def _domain_rates(rng: np.random.Generator, concentration: float = 40.0) -> np.ndarray:
    """One kind of face's gender confusion, spread around DOMAIN_BASE."""
    return np.stack([rng.dirichlet(concentration * r) for r in DOMAIN_BASE])


def _source(rates: np.ndarray, name: str, rng: np.random.Generator) -> Confusion:
    counts = np.stack([rng.multinomial(300, r) for r in rates])
    return Confusion("gender", ("male", "female"), counts, name)


def test_several_sources_cover_a_new_kind_of_face_where_one_source_does_not():
    """Each store's faces are a kind no validation split had: its confusion differs from
    every source's. One source's interval knows only its own faces and under-covers; six
    sources' disagreement widens it to about the stated 90%."""
    rng = np.random.default_rng(3)
    one, several = [], []
    for rep in range(150):
        parts = [_source(_domain_rates(rng), f"d{s}:val", rng) for s in range(6)]
        store = _domain_rates(rng)
        female = rng.uniform(0.2, 0.8)
        mix = np.array([1 - female, female])
        true = rng.multinomial(int(rng.integers(50, 500)), mix)
        counts = dict(zip(("male", "female"), _labels(true, store, rng).tolist(), strict=True))
        for conf, covered in ((parts[0], one), (Confusion.pooled(parts), several)):
            est = estimate("gender", counts, conf, draws=300, seed=rep)
            covered.extend(s.low <= t <= s.high for s, t in zip(est.shares, mix, strict=True))
    assert np.mean(one) < 0.75
    assert 0.85 <= np.mean(several) <= 0.95


def test_sources_that_agree_as_well_as_their_counts_allow_change_nothing():
    """One source pooled is today's matrix; sources with the same rates give no spread, and
    the same shares and intervals as their sum counted on one split."""
    a = Confusion("gender", ("male", "female"), np.array([[460, 40], [75, 425]]), "a:val")
    assert Confusion.pooled([a], "a:val, 2.4.0").to_json() == {**a.to_json(),
                                                               "source": "a:val, 2.4.0"}
    b = Confusion("gender", ("male", "female"), 2 * a.counts, "b:val")
    both = Confusion.pooled([a, b])
    assert both.source == "a:val + b:val" and both.spread().tolist() == [0.0, 0.0]
    single = Confusion("gender", ("male", "female"), 3 * a.counts, "a:val + b:val")
    counts = {"male": 120, "female": 80}
    assert estimate("gender", counts, both, seed=2) == estimate("gender", counts, single, seed=2)


def test_sources_that_disagree_widen_the_interval_but_keep_the_point():
    a = Confusion("gender", ("male", "female"), np.array([[460, 40], [75, 425]]), "a:val")
    b = Confusion("gender", ("male", "female"), np.array([[360, 140], [20, 480]]), "b:val")
    both = Confusion.pooled([a, b])
    single = Confusion("gender", ("male", "female"), both.counts, "pooled")
    rho = both.spread()
    assert (rho > 0).all() and (both.concentration() < single.concentration()).all()
    counts = {"male": 120, "female": 80}
    wide, narrow = estimate("gender", counts, both).get("female"), \
        estimate("gender", counts, single).get("female")
    assert wide is not None and narrow is not None
    assert wide.share == pytest.approx(narrow.share)
    assert wide.high - wide.low > 1.5 * (narrow.high - narrow.low)
    # the combinations of two heads are never more certain than their less-known part
    from audience.core.shares import joint

    combined = joint([both, both])
    assert combined is not None and combined.counts.sum(1).max() <= both.row_sizes().max()


def test_several_sources_round_trip_through_the_manifest():
    strata_a = np.zeros((8, 2, 2))
    strata_a[3] = [[460, 40], [75, 425]]
    a = Confusion("gender", ("male", "female"), strata_a.sum(0), "utkface:val", strata_a)
    b = Confusion("gender", ("male", "female"), np.array([[360, 140], [20, 480]]), "lfw:val")
    both = Confusion.pooled([a, b], "utkface:val + lfw:val, 2.4.0")
    entry = both.to_json()
    assert set(entry["sources"]) == {"utkface:val", "lfw:val"}
    assert "by_age_counts" in entry["sources"]["utkface:val"]
    back = confusions({"confusion": {"gender": entry}})["gender"]
    assert back.counts.tolist() == both.counts.tolist() and back.source == both.source
    assert [p.source for p in back.sources] == ["utkface:val", "lfw:val"]
    assert back.by_age_counts is not None and back.by_age_counts[3].tolist() == strata_a[3].tolist()
    assert back.spread() == pytest.approx(both.spread())
    entry["counts"] = [[1, 0], [0, 1]]  # the sources no longer add up
    with pytest.raises(ConfusionError, match="add up"):
        confusions({"confusion": {"gender": entry}})
    # a manifest of one source has no sources and reads as before
    one = confusions({"confusion": {"gender": a.to_json()}})["gender"]
    assert one.sources == () and "sources" not in a.to_json()


def test_the_gender_spread_is_measured_within_age_brackets():
    """Children are confused more than adults on every kind of face: the spread that widens a
    store's gender interval is the sources' disagreement within an age bracket, weighted by
    the store's age mix, not the difference between a source of children and one of adults."""
    adults = np.zeros((8, 2, 2))
    adults[4] = [[480, 20], [25, 475]]
    kids_a, kids_b = np.zeros((8, 2, 2)), np.zeros((8, 2, 2))
    kids_a[1] = [[400, 100], [90, 410]]
    kids_b[1] = [[300, 200], [40, 460]]
    a = Confusion("gender", ("male", "female"), (adults + kids_a).sum(0), "a:val", adults + kids_a)
    b = Confusion("gender", ("male", "female"), (adults + kids_b).sum(0), "b:val", adults + kids_b)
    both = Confusion.pooled([a, b])
    grown = np.zeros(8)
    grown[4] = 1.0
    assert both.by_age(grown).spread().tolist() == [0.0, 0.0]
    young = np.zeros(8)
    young[1] = 1.0
    assert (both.by_age(young).spread() > 0).all()


@pytest.mark.parametrize("spec, names, leave_dataset_out, scored_with", [
    ("aaf:val", ["utkface:val", "lfw:train", "aaf:train"], False,
     ["utkface:val", "lfw:train", "aaf:train"]),  # other faces of its kind
    ("aaf:val", ["utkface:val", "lfw:train", "aaf:train"], True, ["utkface:val", "lfw:train"]),
    ("aaf:val", ["utkface:val", "lfw:val", "aaf:val"], False, ["utkface:val", "lfw:val"]),
    ("aaf:val", ["utkface:val", "lfw:val", "aaf:val"], True, ["utkface:val", "lfw:val"]),
    ("lfw:val", ["utkface:val", "lfw:val", "aaf:val"], True, ["utkface:val", "aaf:val"]),
    ("utkface:test", ["utkface:val", "lfw:val", "aaf:val"], True,
     ["utkface:val", "lfw:val", "aaf:val"]),  # UTKFace keeps its other split
    ("utkface:val", ["utkface:test", "lfw:val"], True, ["utkface:test", "lfw:val"]),
    ("aaf:val", ["aaf:train"], True, ["aaf:train"]),  # no other dataset: in-domain, asked for
    ("aaf:val", ["aaf:train", "lfw:val"], True, ["lfw:val"]),
    ("lfw:val", ["lfw:val"], False, []),
    ("aaf:val", ["aaf:train", "fer2013:PublicTest"], True, ["aaf:train", "fer2013:PublicTest"]),
])
def test_a_split_is_never_scored_with_its_own_counts(spec, names, leave_dataset_out,
                                                     scored_with):
    from audience.models.shares_eval import held_out

    assert held_out(spec, names, leave_dataset_out) == scored_with


def test_ethnic_groups_can_be_sources_of_their_own():
    from audience.models.shares_eval import (
        Labelled,
        count_confusions,
        held_out,
        pool_sources,
        split_of,
    )

    rng = np.random.default_rng(1)
    n = 400
    race = rng.integers(0, 2, n)
    gender = rng.integers(0, 2, n)
    ages = np.full(n, 30.0, np.float32)
    lab = Labelled("utkface:val", ages, gender, race, ages, gender * 1.0, race)
    per = {f"utkface:val/{g}": count_confusions(lab.subset(race == r, g), 13.0,
                                                f"utkface:val/{g}")
           for r, g in enumerate(("white", "black"))}
    per["lfw:val"] = count_confusions(lab, 13.0, "lfw:val")
    found = pool_sources(per, list(per), "2.4.0")
    assert found["gender"].source == "utkface:val by ethnicity + lfw:val, 2.4.0"
    assert len(found["gender"].sources) == 3
    assert found["gender"].counts.sum() == 2 * ((ages >= 13).sum())
    assert split_of("utkface:val/asian") == "utkface:val"
    assert held_out("utkface:val", list(per)) == ["lfw:val"]
    assert held_out("lfw:val", list(per), True) == ["utkface:val/white", "utkface:val/black"]
