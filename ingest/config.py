"""Typed configuration for the camera stage. Unknown keys are errors, not silently ignored."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from audience.core.config import Strict
from audience.core.ids import RULE as ID_RULE
from audience.core.ids import is_valid_id


class DetectorConfig(Strict):
    """Where the detector's limits are (measured, docs/benchmarks.md "Counting"): YuNet finds a
    face of about 12 px or more at the working resolution, so ``work_width`` decides which faces can
    be counted at all. 960 keeps a 720p frame's 16 px faces at 12 px and runs 31.5 frames of
    720p per CPU-second (`audience bench camera`; 640: 70, 1280: 21); a 480x270 frame is
    detected at 2x, so its 8-12 px faces reach the floor too."""

    # 0.6/0.4 measured against 0.7/0.5 and 0.5/0.3 (docs/benchmarks.md "Counting"): 0.7 misses most
    # faces under 16 px, 0.5 starts a second track on one head (a double detection).
    score_threshold: float = Field(
        0.6, ge=0, le=1, description="YuNet confidence a face needs to start a track.")
    low_score_threshold: float = Field(
        0.4, ge=0, le=1, description="Faces at least this confident (but under "
        "score_threshold) may continue an existing track, never start one (ByteTrack); "
        "equal to score_threshold turns this off.")
    nms_threshold: float = Field(0.3, ge=0, le=1, description="YuNet non-maximum suppression IoU.")
    work_width: int = Field(
        960, ge=64, description="Frames are resized to this width before detection: wider "
        "ones down (speed), narrower ones up by at most max_upscale (small faces).")
    max_upscale: float = Field(
        2.0, ge=1, le=4, description="Largest enlargement of a narrow frame before detection "
        "(1: never enlarge).")
    min_face_px: float = Field(
        10.0, ge=1, description="Faces whose shorter box side at the working resolution is "
        "smaller are dropped: the detector's reliable floor.")

    @model_validator(mode="after")
    def _thresholds(self) -> DetectorConfig:
        if self.low_score_threshold > self.score_threshold:
            raise ValueError("low_score_threshold must not exceed score_threshold")
        return self


class BodiesConfig(Strict):
    """The person (body) detector beside the face detector: MoveNet MultiPose Lightning.

    It finds the people a face detector cannot (backs turned, faces too small); a visitor is
    then one person track, with or without a face. Defaults from measurements
    (docs/store-manager.md, "Passers-by, watchers and attention"): at long side 256 it runs
    about 55 frames of 720p per core-second and finds a back-turned person in 94 % of frames
    at score 0.3 with no detection on empty frames; it scores a clearly visible person
    0.5-0.7, so 0.3 is the point that keeps partly seen people without admitting noise.
    """

    enabled: bool = Field(True, description="Detect people (bodies) as well as faces; off: "
                          "a visitor is a face track, as before.")
    long_side: int = Field(
        256, ge=128, le=640, multiple_of=32, description="Frames are resized to this long "
        "side (a multiple of 32) before body detection: 256 is fast, 384 finds a little more "
        "(small, far people) at about half the speed.")
    score_threshold: float = Field(
        0.3, ge=0, le=1, description="MoveNet confidence a person needs to be kept.")
    min_hits: int = Field(
        3, ge=1, description="Detections a person track without a confirmed face needs "
        "before it counts as a visitor (as tracker.min_hits for faces): one- or two-frame "
        "false detections stay out.")


class AttentionConfig(Strict):
    """When a person counts as facing the camera, and when a visitor is a watcher.

    A head turned up to about 30 degrees from the camera still lets the eyes reach it (the
    eyes turn a further 15-20 degrees comfortably): ``max_yaw`` 0.5 (the nose half-way
    from the eyes' midpoint to one eye: about 30 degrees) and ``max_pitch`` 0.5. A watcher
    looked for ``min_attention_s`` = 1 s in all: five frames at 5 fps, more than a head
    swinging past the camera (frontal for one or two frames), and about the time it takes
    to read a few words: a look, not a glance (docs/store-manager.md, "Passers-by, watchers
    and attention").
    """

    max_yaw: float = Field(
        0.5, ge=0, le=1, description="Largest left/right head turn that still counts as "
        "facing the camera (0 frontal, 1 profile; the nose between the eyes).")
    max_pitch: float = Field(
        0.5, ge=0, le=1, description="Largest up/down head tilt that still counts as facing "
        "the camera (0 level, 1 the nose on the eye line or the mouth line; face landmarks "
        "only).")
    min_attention_s: float = Field(
        1.0, ge=0, description="Seconds facing the camera that make a visitor a watcher.")
    min_face_px: float = Field(
        24.0, ge=1, description="Faces whose shorter box side (frame pixels) is smaller are "
        "judged from the body's keypoints (nose, eyes) where a body is attached: the face "
        "landmarks of smaller faces are too coarse.")
    keypoint_score: float = Field(
        0.3, ge=0, le=1, description="Confidence a body keypoint (nose, eye, ear, shoulder) "
        "needs to be used.")


class QualityConfig(Strict):
    # Count first, label what you can: these gates decide which faces give crops for the
    # attributes; every face above the detector's floor still feeds the tracker.
    min_score: float = Field(
        0.7, ge=0, le=1, description="Faces less confident than this (YuNet score) are still "
        "tracked and counted, but give no crop for the attributes.")
    # 32: the attribute floor, measured (docs/accuracy.md "Accuracy by face size", `audience
    # evaluate utkface --face-px N` on the val split): the smallest face at which gender stays
    # within 1 point and age within 0.5 years of the full-size figures. At 24 px gender loses
    # 2.2 points and age 1.2 years on UTKFace val. Ethnicity (off by default) needs 48.
    min_face_px: int = Field(
        32, ge=8, description="Faces whose shorter box side (frame pixels) is smaller are "
        "still tracked and counted, but give no crop for the attributes: the attribute floor "
        "(32 px measured for gender and age; 48 px where ethnicity is on).")
    # Sharp 48x48 crops of the bundled clip score 100-250; motion blur falls below 15.
    min_sharpness: float = Field(
        15.0, ge=0,
        description="Minimum variance of the Laplacian of the aligned crop (blur gate).")
    max_yaw: float = Field(
        0.6, ge=0, le=1, description="Maximum left/right asymmetry of the nose between the eyes "
        "(0 frontal, 1 full profile); more turned faces give no crop.")


class TrackerConfig(Strict):
    """Defaults are tuned for fps=5 (see CameraConfig.fps).

    min_hits=3 is 0.4 s of presence: it rejects one- or two-frame false detections (posters,
    reflections) yet counts anyone in view for half a second. max_unseen_s=1.5 bridges ~7
    sampled frames of occlusion or missed detections, yet is short against the 3-5 s a
    walker takes to cross a view, so two visitors are not merged. On the bundled clip each
    of the 3 people gets 17 hits and no gap, so it gives exactly 3 tracks with margin: the
    tests also run it at 2 and 12.5 fps and with 30 % of the detections dropped.
    """

    max_unseen_s: float = Field(
        1.5, gt=0, description="A track unseen for this many seconds ends and is emitted (T).")
    best_k: int = Field(5, ge=1, le=50, description="Crops kept per track, best first (K).")
    min_hits: int = Field(
        3, ge=1, description="Detections a track needs before it counts as a visitor.")
    iou_threshold: float = Field(
        0.2, ge=0, le=1,
        description="Minimum box IoU to continue a track from one frame to the next.")
    # 1.5: a visitor leaving across the view at 5 fps moves 1.3-1.6 face widths per frame
    # (one-by-one-person-detection.mp4, 134.8-135.2 s); 1.0 split each such exit into
    # one-hit tracks that min_hits then discarded.
    max_centre_shift: float = Field(
        1.5, ge=0, description="Fallback when IoU is too low (fast faces, low fps): continue a "
        "track if the box centre moved at most this many box sizes.")


class CameraConfig(Strict):
    id: str = Field("cam-1", min_length=1, description=f"Camera id, unique within the store "
                    f"({ID_RULE}).")
    store: str = Field("store-1", min_length=1, description=f"Store id this camera belongs to "
                       f"({ID_RULE}: the same rule as Kafka messages and dashboard filters).")
    source: str = Field(
        "", description="Video file, image folder, rtsp:// or http(s):// URL, or webcam index.")
    # 5 fps: a face walking towards the camera moves less than its own width between analysed
    # frames, so IoU association holds (one crossing the view: up to 1.6 widths, see
    # tracker.max_centre_shift), and one core (~31 frames/s of 720p, see ingest.bench) serves
    # several cameras. Sampling more often adds crops of the same pose, not information.
    fps: float = Field(5.0, gt=0, le=60, description="Frames analysed per second of video.")
    reconnect_max_s: float = Field(
        30.0, gt=0, description="Longest wait between reconnect attempts to a live source.")
    reconnect_attempts: int = Field(
        0, ge=0, description="Give up a live source after this many failed reconnects (0: never).")
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="Face detection.")
    bodies: BodiesConfig = Field(default_factory=BodiesConfig,
                                 description="Person (body) detection.")
    attention: AttentionConfig = Field(default_factory=AttentionConfig,
                                       description="Facing the camera, and watchers.")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Crop quality gates.")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Tracking.")
    exclusion_masks: list[list[tuple[float, float]]] = Field(
        default_factory=list, description="Polygons in frame pixels (e.g. the staff counter); "
        "faces whose centre lies inside one are dropped.")

    @field_validator("id", "store")
    @classmethod
    def _id_rule(cls, v: str) -> str:
        if not is_valid_id(v):  # one rule at every intake: audience.core.ids
            raise ValueError(f"not a valid id: use {ID_RULE}")
        return v

    @field_validator("exclusion_masks")
    @classmethod
    def _polygons(cls, v: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
        for poly in v:
            if len(poly) < 3:
                raise ValueError("an exclusion mask needs at least 3 points")
        return v
