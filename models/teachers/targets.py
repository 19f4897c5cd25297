"""Training sets for ``audience train --teachers``: ground truth, FER+ votes and teacher
outputs blended into one masked target per head.

Per sample and head (the mask column weighs each sample's loss; 0 = no label):

- emotion: FER-2013 rows get hard = 0.8 one-hot + 0.2 FER+ votes and soft = mini-Xception
  (blended with FaceExpressionNet at ``expression_share``, 0 by default, and with a shipped
  model's emotion at ``emotion_teacher_share`` where ``emotion_teacher`` names one) at
  temperature T (mask 1); UTKFace chips get mini-Xception as both (mask ``utk_emotion_weight``).
- gender: FER-2013 rows get AgeGenderNet's p(female) (mask ``fer_gender_weight``); UTKFace
  chips their label (mask 1).
- age: FER-2013 rows get AgeGenderNet's age (mask ``fer_age_weight``); UTKFace chips their label.
- ethnicity: UTKFace labels only, with mild inverse-frequency class weights.

Validation (FER-2013 PublicTest, UTKFace ``val``) carries ground truth only, so the figures
that choose the epoch are never a teacher's opinion. AgeGenderNet never labels UTKFace chips.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from audience.models.data import EMOTIONS, ETHNICITIES, load_ferplus
from audience.models.teachers.cache import (
    blend,
    fer_expression_outputs,
    fer_model_emotion,
    fer_teacher_outputs,
    utk_teacher_emotion,
)
from audience.models.utk import aligned_crops, gray_crops, load_utk_dirs, standardize_batch

if TYPE_CHECKING:
    from audience.models.train import TrainConfig

log = logging.getLogger(__name__)


def soften(p: np.ndarray, temperature: float) -> np.ndarray:
    """A probability vector at temperature T: softmax(log p / T)."""
    z = np.log(np.clip(p, 1e-7, 1.0)) / temperature
    z = np.exp(z - z.max(1, keepdims=True))
    return (z / z.sum(1, keepdims=True)).astype(np.float32)


def kd_target(hard: np.ndarray, teacher: np.ndarray, temperature: float, alpha: float,
              mask: np.ndarray) -> np.ndarray:
    """``models.net.masked_kd``'s layout: [hard | soft at T | T | alpha | mask]."""
    n = len(hard)
    return np.concatenate([hard, soften(teacher, temperature), np.full((n, 1), temperature),
                           np.full((n, 1), alpha), mask[:, None]], 1).astype(np.float32)


def _col(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.stack([values, mask], 1).astype(np.float32)


def build_teacher_sets(cfg: TrainConfig) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Training and validation arrays: x (N, size, size, channels) and one target per head."""
    from audience.core.preprocess import to_channels
    from audience.models.train import _fer_inputs, class_weights

    x_fer, fer = _fer_inputs(cfg.fer_csv, cfg.size)
    t_fer = fer_teacher_outputs(cfg.fer_csv, fer.images)
    if cfg.expression_share > 0:
        t_fer["emotion"] = blend(
            t_fer["emotion"], fer_expression_outputs(cfg.fer_csv, fer.images),
            cfg.expression_share)
        log.info("emotion teacher on FER-2013: %.2f mini-Xception + %.2f FaceExpressionNet",
                 1 - cfg.expression_share, cfg.expression_share)
    if cfg.emotion_teacher:
        t_fer["emotion"] = blend(
            t_fer["emotion"], fer_model_emotion(cfg.fer_csv, fer.images, cfg.emotion_teacher),
            cfg.emotion_teacher_share)
        log.info("emotion teacher on FER-2013: %.2f of it from %s", cfg.emotion_teacher_share,
                 cfg.emotion_teacher)
    hard = np.eye(len(EMOTIONS), dtype=np.float32)[fer.labels]
    if cfg.ferplus_csv:
        votes = load_ferplus(cfg.ferplus_csv, int(fer.rows.max()) + 1)[fer.rows]
        has = votes.sum(1) > 0
        hard[has] = (1 - cfg.ferplus_weight) * hard[has] + cfg.ferplus_weight * votes[has]
    x_fer = to_channels(x_fer, cfg.channels)

    utk_all = load_utk_dirs(cfg.utk_dirs)
    crops, ok = aligned_crops(utk_all, cfg.size)
    # A specialist without emotion gives it no loss: no need to run the teacher on its crops.
    t_utk = (utk_teacher_emotion(gray_crops(crops), [str(p) for p in utk_all.paths])
             if "emotion" in cfg.tasks else np.zeros((len(crops), len(EMOTIONS)), np.float32))
    x_utk = to_channels(standardize_batch(crops), cfg.channels)
    from audience.models.data import utk_split

    splits = np.array([utk_split(p.name) for p in utk_all.paths])
    race_w = class_weights(utk_all.race[ok], len(ETHNICITIES))

    sets = {}
    for name, fer_split, utk_name in (("train", "Training", "train"), ("val", "PublicTest", "val")):
        f = np.flatnonzero(fer.usage == fer_split)
        u = np.flatnonzero((splits == utk_name) & ok)
        if cfg.limit:
            f, u = f[: cfg.limit], u[: cfg.limit]
        if name == "train" and cfg.utk_repeat > 1:  # UTKFace is smaller than FER-2013
            u = np.tile(u, cfg.utk_repeat)
        train = name == "train"
        nf, nu = len(f), len(u)
        of, zf, ou, zu = np.ones(nf), np.zeros(nf), np.ones(nu), np.zeros(nu)
        w_emo_u = zu + (cfg.utk_emotion_weight if train else 0.0)
        w_gen_f = zf + (cfg.fer_gender_weight if train else 0.0)
        w_age_f = zf + (cfg.fer_age_weight if train else 0.0)
        t_emo_u = t_utk[u]
        emotion = np.concatenate([
            kd_target(hard[f], t_fer["emotion"][f], cfg.temperature, cfg.kd_alpha, of),
            kd_target(t_emo_u, t_emo_u, cfg.temperature, cfg.kd_alpha, w_emo_u)])
        y = {
            "emotion": emotion,
            # AgeGenderNet's regression can leave 0..100 (down to -9 years on FER-2013)
            "age": _col(np.r_[np.clip(t_fer["age"][f], 1, 100), utk_all.age[u]],
                        np.r_[w_age_f, ou]),
            "gender": _col(np.r_[t_fer["p_female"][f], utk_all.gender[u]], np.r_[w_gen_f, ou]),
            "ethnicity": np.concatenate([
                np.concatenate([np.zeros((nf, 5)), np.eye(5)[utk_all.race[u]]]),
                np.r_[zf, race_w[utk_all.race[u]] if train else ou][:, None]], 1)
            .astype(np.float32),
        }
        x = np.concatenate([x_fer[f], x_utk[u]]).astype(np.float32)
        if cfg.wild_dirs:
            x, y = add_wild(cfg, name, x, y)
        sets[name] = (x, y)
        log.info("%s: %d FER-2013 rows + %d UTKFace chips (teachers' targets)", name, nf, nu)
    return sets


def add_wild(cfg: TrainConfig, split: str, x: np.ndarray, y: dict[str, np.ndarray],
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Append the faces of ``cfg.wild_dirs`` (AAF, LFW: ``models.wild``) found by the camera's
    detector: gender always, age where the folder has it; no emotion or ethnicity target.
    Training repeats them ``cfg.wild_repeat`` times; validation holds each once, so the
    checkpoint is chosen on faces in the wild too."""
    from audience.core.preprocess import to_channels
    from audience.models.wild import load_wild, wild_crops

    xs, parts = [x], {head: [t] for head, t in y.items()}
    for directory in cfg.wild_dirs:
        data = load_wild(directory, split)
        crops, found = wild_crops(data, cfg.size)
        idx = np.flatnonzero(found)
        if split == "train" and cfg.wild_repeat > 1:
            idx = np.tile(idx, cfg.wild_repeat)
        if cfg.limit:
            idx = idx[: cfg.limit]
        n, ones = len(idx), np.ones(len(idx))
        age = data.age[idx]
        has_age = ~np.isnan(age)
        xs.append(to_channels(standardize_batch(crops[idx]), cfg.channels))
        for head, t in y.items():
            block = np.zeros((n, t.shape[1]), np.float32)  # mask column (last) 0: no target
            if head == "emotion":  # a valid temperature, so a masked row stays finite
                flat = np.full((n, len(EMOTIONS)), 1 / len(EMOTIONS), np.float32)
                block = kd_target(flat, flat, cfg.temperature, cfg.kd_alpha, np.zeros(n))
            elif head == "gender":
                block = _col(data.gender[idx].astype(np.float32), ones)
            elif head == "age":
                block = _col(np.where(has_age, age, 0.0), has_age.astype(np.float64))
            parts[head].append(block)
        log.info("%s: %d faces of %s (found by the camera's detector, %d distinct)", split, n,
                 data.name, int(found.sum()))
    return (np.concatenate(xs).astype(np.float32),
            {head: np.concatenate(blocks).astype(np.float32) for head, blocks in parts.items()})
