"""Whether a person faces the camera in one frame: from the face landmarks, or (faces too
small for their landmarks, or no face found) from the body's keypoints."""

from __future__ import annotations

import numpy as np

from audience.core.face import Face
from audience.ingest.bodies import LEFT_EYE, NOSE, RIGHT_EYE, Body
from audience.ingest.config import AttentionConfig
from audience.ingest.quality import yaw

# Where the nose sits between the eye line and the mouth line of a level face: the mean
# YuNet landmarks of aligned UTKFace chips (ingest.detect.UTK_MEAN_MARKS: eyes at y 86,
# nose 122, mouth 150).
LEVEL_NOSE = (122.0 - 86.0) / (150.0 - 86.0)


def pitch(landmarks: np.ndarray) -> float:
    """Head tilt from the nose between the eye line and the mouth line: 0 level .. 1 the
    nose on the eye line (looking up) or on the mouth line (looking down)."""
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes, mouth, nose = (pts[0] + pts[1]) / 2.0, (pts[3] + pts[4]) / 2.0, pts[2]
    axis = mouth - eyes
    norm2 = float(axis @ axis)
    if norm2 < 1e-6:
        return 1.0
    r = float((nose - eyes) @ axis) / norm2
    tilt = (LEVEL_NOSE - r) / LEVEL_NOSE if r < LEVEL_NOSE else (r - LEVEL_NOSE) / (1 - LEVEL_NOSE)
    return float(np.clip(tilt, 0.0, 1.0))


def face_frontal(face: Face, cfg: AttentionConfig) -> bool:
    """Yaw and pitch from the five face landmarks within the limits."""
    return yaw(face.landmarks) <= cfg.max_yaw and pitch(face.landmarks) <= cfg.max_pitch


def keypoint_yaw(body: Body, min_score: float) -> float | None:
    """Head turn from the nose between the eyes (MoveNet keypoints), 0 frontal .. 1 profile;
    None when the nose or an eye is not confidently seen (a back, a hidden head). A head
    turned away puts the person's left eye on the image's left: 1."""
    kp = body.keypoints
    if min(kp[NOSE, 2], kp[LEFT_EYE, 2], kp[RIGHT_EYE, 2]) < min_score:
        return None
    right, left, nose = kp[RIGHT_EYE, :2], kp[LEFT_EYE, :2], kp[NOSE, :2]
    if left[0] <= right[0]:  # mirrored: the back of the head, or a profile past 90 degrees
        return 1.0
    marks = np.array([right, left, nose, nose, nose], np.float64)
    return yaw(marks)


def body_frontal(body: Body, cfg: AttentionConfig) -> bool:
    """Facing the camera by the keypoints: nose and both eyes seen, yaw within the limit
    (keypoints give no reliable pitch)."""
    turn = keypoint_yaw(body, cfg.keypoint_score)
    return turn is not None and turn <= cfg.max_yaw


def frontal(face: Face | None, body: Body | None, cfg: AttentionConfig) -> bool:
    """One person in one frame: the face's landmarks where the face is large enough (or
    there is no body), else the body's keypoints. Where both are seen, the keypoints must
    also see a face (nose and eyes): a face detector scores the back of a dark-haired head
    as a face at times, and its landmarks then say nothing about where the person looks."""
    if face is not None and body is None:
        return face_frontal(face, cfg)
    if body is None:
        return False
    if face is not None and face.size >= cfg.min_face_px:
        return face_frontal(face, cfg) and keypoint_yaw(body, cfg.keypoint_score) is not None
    return body_frontal(body, cfg)
