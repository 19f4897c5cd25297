"""Count people, not frames: fold a track's per-crop results into one visit."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from audience.core.face import Track
from audience.core.visit import FaceAttributes, Visit, age_bracket
from audience.inference.analyzer import FaceAnalyzer


def _mean_scores(dicts: list[dict[str, float]], w: np.ndarray) -> dict[str, float]:
    keys = list(dicts[0])
    m = np.average(np.array([[d[k] for k in keys] for d in dicts]), axis=0, weights=w)
    return {k: round(float(v), 4) for k, v in zip(keys, m, strict=True)}


def _top(scores: dict[str, float]) -> str:
    return max(scores, key=lambda k: scores[k])


def aggregate(track: Track, attrs: list[FaceAttributes], model_version: str,
              gender_min_age: float = 0.0) -> Visit:
    """Quality-weighted mean over the track's crops: scores are averaged, then the label is
    the arg-max; age is the weighted mean; gender uses the mean P(female) of the crops that
    carry one, and is unknown for a visitor whose mean age is under ``gender_min_age``."""
    visit = Visit(
        store_id=track.store_id, camera_id=track.camera_id, track_id=track.track_id,
        started_at=datetime.fromtimestamp(track.started_at, UTC),
        ended_at=datetime.fromtimestamp(track.ended_at, UTC),
        dwell_s=round(track.dwell_s, 2), n_crops=len(attrs), model_version=model_version,
        attention_s=track.attention_s, watcher=track.watcher,
    )
    if not attrs:
        return visit
    q = np.array([max(f.quality, 1e-3) for f in track.faces[: len(attrs)]], np.float64)
    w = q if len(q) == len(attrs) else np.ones(len(attrs))
    first = attrs[0]
    if first.emotion_scores is not None:
        visit.emotion_scores = _mean_scores([a.emotion_scores or {} for a in attrs], w)
        visit.emotion = _top(visit.emotion_scores)
    if first.age is not None:
        visit.age = round(float(np.average([a.age for a in attrs], weights=w)), 1)
        visit.age_bracket = age_bracket(visit.age)
    gendered = [i for i, a in enumerate(attrs) if a.gender is not None]
    child = visit.age is not None and visit.age < gender_min_age
    if gendered and not child:
        p_female = np.average([attrs[i].p_female for i in gendered], weights=w[gendered])
        visit.gender = "female" if p_female >= 0.5 else "male"
        visit.gender_score = round(float(max(p_female, 1 - p_female)), 4)
    if first.ethnicity_scores is not None:
        visit.ethnicity_scores = _mean_scores([a.ethnicity_scores or {} for a in attrs], w)
        visit.ethnicity = _top(visit.ethnicity_scores)
    return visit


def label_tracks(analyzer: FaceAnalyzer, tracks: list[Track], crops_per_visit: int) -> list[Visit]:
    """One batched inference call over all the tracks' best crops, then one visit per track."""
    crops, owners = [], []
    for i, track in enumerate(tracks):
        for face in track.faces[:crops_per_visit]:
            if face.crop is not None:
                crops.append(face.crop)
                owners.append(i)
    attrs = analyzer.analyze(crops)
    per_track: list[list] = [[] for _ in tracks]
    for owner, a in zip(owners, attrs, strict=True):
        per_track[owner].append(a)
    return [aggregate(t, a, analyzer.version, analyzer.gender_min_age)
            for t, a in zip(tracks, per_track, strict=True)]

