"""Counting benchmark: the camera stage on annotated clips, counted visitors against the truth.

A clip's truth is a small YAML file (``ClipTruth``): beside the clip (``DIR/<clip>.yaml``),
or, for the shared sample clips that cannot carry one, in this package's ``clips/`` folder.
``audience simulate --out`` writes one per synthetic camera, with exact truth.

Each confirmed track is one counted visitor (the stage's own rule, whatever its crops): a
person, seen as a body, a face or both (with bodies off, a face track). Beside people, each
clip reports the tracks that showed a face (against ``faces_seen``) and the watchers (tracks
that faced the camera for ``attention.min_attention_s``, against ``watchers`` where the truth
judges it).
Where the truth also says when each visitor is in view (``in_view``, seconds from the clip's
start), every track is matched to the visitor it overlaps most, and the over- and
under-counts are real ones: ``missed`` visitors no track overlaps, ``extra`` tracks (a
visitor split in two, or a track nobody explains). Without it they are read off the error
alone, so a split and a miss in one clip cancel out.

Gender agreement is a multiset match: we do not know which track is which person, so a
clip annotated [female, male, female] whose visits are labelled [female, female, male]
agrees 3 of 3; visits without a label (no usable crop) agree with nobody.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import yaml
from pydantic import Field, ValidationError, model_validator

from audience.core.config import Strict
from audience.core.errors import InputError
from audience.core.face import Track
from audience.ingest.camera import CameraStage
from audience.ingest.config import CameraConfig
from audience.ingest.sources import open_source

log = logging.getLogger(__name__)

#: One label per track ("female" / "male", None when unknown): supplied by the application,
#: which may use the inference stage (ingest must not import it).
GenderFn = Callable[[list[Track]], list[str | None]]
Gender = Literal["female", "male"]


class ClipTruth(Strict):
    """Ground truth of one clip, counted by eye (or exact, for simulator clips)."""

    clip: str = Field(min_length=1, description="File or image-folder name, relative to the "
                      "clips directory.")
    visitors: int = Field(ge=0, description="People who enter the view (passers-by): the "
                          "footfall the counter should report, faces shown or not.")
    faces_seen: int | None = Field(None, ge=0, description="Of those, how many show a face "
                                   "to the camera at some point (what a face counter can "
                                   "see); informative, not scored.")
    watchers: int | None = Field(None, ge=0, description="Of those, how many look at the "
                                 "camera for a second or more, judged by eye (optional: left "
                                 "out where it cannot be judged).")
    genders: list[Gender] | None = Field(None, description="Gender of each visitor, any "
                                         "order (optional).")
    in_view: list[tuple[float, float]] | None = Field(
        None, description="When each visitor is in view, [from, to] seconds from the clip's "
        "start, one pair per visitor (optional; exposes splits and misses that cancel out).")
    fps: float | None = Field(None, gt=0, description="Frame rate of an image folder (its "
                              "frames carry no timestamps).")

    @model_validator(mode="after")
    def _one_interval_per_visitor(self) -> ClipTruth:
        if self.in_view is not None and len(self.in_view) != self.visitors:
            raise ValueError(f"in_view has {len(self.in_view)} intervals for "
                             f"{self.visitors} visitors")
        if self.genders is not None and len(self.genders) != self.visitors:
            raise ValueError(f"genders has {len(self.genders)} entries for "
                             f"{self.visitors} visitors")
        if self.watchers is not None and self.watchers > self.visitors:
            raise ValueError(f"{self.watchers} watchers among {self.visitors} visitors")
        return self
    note: str = Field("", description="What the clip shows and why it is hard.")


@dataclass(slots=True)
class ClipResult:
    clip: str
    true: int
    counted: int
    error: int  #: counted - true
    missed: int  #: visitors no track stands for (from in_view; else max(0, -error))
    extra: int  #: tracks beyond one per visitor: splits, false tracks (else max(0, error))
    faces_seen: int | None
    faces_counted: int  #: counted visitors whose face was seen in some frame
    watchers_true: int | None  #: from the truth, where judged by eye
    watchers: int  #: counted visitors who faced the camera for min_attention_s
    without_crop: int  #: counted visitors with no usable crop (attributes unknown)
    genders_annotated: int
    genders_agreeing: int | None  #: None when not annotated or not labelled
    seconds: float


def bundled_truth_dir() -> Path:
    """The annotations of the shared sample clips (``../shared/datasets/videos``)."""
    return Path(str(resources.files("audience.ingest") / "clips"))


def read_truth(path: Path) -> ClipTruth:
    try:
        data = yaml.safe_load(path.read_text())
        return ClipTruth.model_validate(data)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise InputError(f"{path} is not valid YAML{where}: {problem}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise InputError(f"{path}: {where}: {first['msg']}") from None


def find_truths(clips: Path, truth_dirs: list[Path]) -> list[tuple[Path, ClipTruth]]:
    """(clip path, truth) for each clip in ``clips`` that has a truth file: ``clips`` itself
    first, then ``truth_dirs`` in order; a clip is evaluated once."""
    if not clips.is_dir():
        raise InputError(f"clips directory {clips} not found: pass --clips DIR")
    found: dict[str, tuple[Path, ClipTruth]] = {}
    for folder in [clips, *truth_dirs]:
        for path in sorted(folder.glob("*.yaml")):
            truth = read_truth(path)
            clip = clips / truth.clip
            if truth.clip not in found and clip.exists():
                found[truth.clip] = (clip, truth)
    if not found:
        raise InputError(f"no clip in {clips} has a ground-truth YAML (<clip>.yaml with "
                         "'clip' and 'visitors'), beside it or in --truth DIR")
    return sorted(found.values(), key=lambda ct: ct[1].clip)


def gender_agreement(truth: list[str], labels: list[str | None]) -> int:
    """How many annotated genders a visit label matches, order-free (multiset overlap)."""
    predicted = Counter(g for g in labels if g is not None)
    return sum((Counter(truth) & predicted).values())


def match_in_view(tracks: list[Track], in_view: list[tuple[float, float]]) -> tuple[int, int]:
    """(missed visitors, extra tracks). Tracks and visitors are paired greedily, largest time
    overlap first, one track per visitor (ties: the earlier track and visitor); a track left
    over was a visitor split in two or a false track, a visitor left over was missed."""
    pairs = sorted(((min(t.ended_at, b) - max(t.started_at, a), ti, vi)
                    for ti, t in enumerate(tracks) for vi, (a, b) in enumerate(in_view)),
                   key=lambda p: (-p[0], p[1], p[2]))
    tracks_left, visitors_left = set(range(len(tracks))), set(range(len(in_view)))
    for overlap, ti, vi in pairs:
        if overlap >= 0 and ti in tracks_left and vi in visitors_left:
            tracks_left.discard(ti)
            visitors_left.discard(vi)
    return len(visitors_left), len(tracks_left)


def shrunk(frames: Iterable[tuple[float, np.ndarray]], factor: float
           ) -> Iterator[tuple[float, np.ndarray]]:
    """The same scene ``factor`` times smaller in a frame of the same size (the rest a flat
    gray): the visitors as a camera farther away would see them, with the same truth."""
    for t, frame in frames:
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (max(1, round(w * factor)), max(1, round(h * factor))),
                           interpolation=cv2.INTER_AREA)
        out = np.full_like(frame, 128)
        y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
        out[y:y + small.shape[0], x:x + small.shape[1]] = small
        yield t, out


def count_clip(path: Path, truth: ClipTruth, camera: CameraConfig,
               genders: GenderFn | None = None, shrink: float = 1.0) -> ClipResult:
    """Run the camera stage on one clip (its scene ``shrink`` times as large) and compare."""
    fps = truth.fps if truth.fps and path.is_dir() else camera.fps
    cfg = camera.model_copy(update={"fps": fps})
    started = time.perf_counter()
    stage = CameraStage(cfg)
    source: Iterable[tuple[float, np.ndarray]] = open_source(path, fps, start_time=0.0,
                                                             progress=False)
    if shrink != 1.0:
        source = shrunk(source, shrink)
    tracks = list(stage.run(source))
    seconds = time.perf_counter() - started
    missed, extra = max(0, -(len(tracks) - truth.visitors)), max(0, len(tracks) - truth.visitors)
    if truth.in_view is not None:
        missed, extra = match_in_view(tracks, truth.in_view)
    agreeing = None
    if truth.genders and genders is not None:
        agreeing = gender_agreement(list(truth.genders), genders(tracks))
    return ClipResult(
        clip=truth.clip, true=truth.visitors, counted=len(tracks),
        error=len(tracks) - truth.visitors, missed=missed, extra=extra,
        faces_seen=truth.faces_seen,
        faces_counted=sum(bool(t.face_hits) for t in tracks),
        watchers_true=truth.watchers, watchers=sum(bool(t.watcher) for t in tracks),
        without_crop=sum(not t.faces for t in tracks),
        genders_annotated=len(truth.genders or []), genders_agreeing=agreeing,
        seconds=round(seconds, 2))


def evaluate_counting(clips: Path, camera: CameraConfig, truth_dirs: list[Path] | None = None,
                      genders: GenderFn | None = None, shrink: float = 1.0
                      ) -> dict[str, object]:
    """Per-clip results and totals (absolute error, over/under-counts, gender agreement)."""
    if not 0.05 <= shrink <= 1.0:
        raise InputError(f"shrink {shrink} is out of range: use 0.05 to 1 (1: as recorded)")
    dirs = [bundled_truth_dir()] if truth_dirs is None else truth_dirs
    results = [count_clip(p, t, camera, genders, shrink) for p, t in find_truths(clips, dirs)]
    labelled = [r for r in results if r.genders_agreeing is not None]
    totals = {
        "clips": len(results),
        "true": sum(r.true for r in results),
        "counted": sum(r.counted for r in results),
        "abs_error": sum(abs(r.error) for r in results),
        "over": sum(r.extra for r in results),
        "under": sum(r.missed for r in results),
        "within_1": sum(abs(r.error) <= 1 for r in results),
        "exact": sum(r.error == 0 for r in results),
        "without_crop": sum(r.without_crop for r in results),
        "faces_counted": sum(r.faces_counted for r in results),
        "watchers": sum(r.watchers for r in results),
        # watchers where the truth judges them: counted against true, clip by clip
        "watchers_judged_true": sum(r.watchers_true or 0 for r in results
                                    if r.watchers_true is not None),
        "watchers_judged_counted": sum(r.watchers for r in results
                                       if r.watchers_true is not None),
        "watchers_judged_exact": sum(r.watchers == r.watchers_true for r in results
                                     if r.watchers_true is not None),
        "watchers_judged_clips": sum(r.watchers_true is not None for r in results),
        "genders_annotated": sum(r.genders_annotated for r in labelled),
        "genders_agreeing": sum(r.genders_agreeing or 0 for r in labelled),
    }
    return {"clips": [asdict(r) for r in results], "totals": totals,
            "settings": {"shrink": shrink, "fps": camera.fps,
                         "work_width": camera.detector.work_width,
                         "max_upscale": camera.detector.max_upscale,
                         "score_threshold": camera.detector.score_threshold,
                         "low_score_threshold": camera.detector.low_score_threshold,
                         "min_hits": camera.tracker.min_hits,
                         "bodies": camera.bodies.enabled,
                         "bodies_long_side": camera.bodies.long_side,
                         "bodies_score_threshold": camera.bodies.score_threshold,
                         "bodies_min_hits": camera.bodies.min_hits,
                         "min_attention_s": camera.attention.min_attention_s}}


def table(report: dict) -> str:
    """The report as a fixed-width table, one clip a line, totals last."""
    head = (f"{'clip':<44} {'people':>6} {'counted':>7} {'error':>5} {'missed':>6} "
            f"{'extra':>5} {'faces':>7} {'watchers':>8} {'no crop':>7} {'gender':>7}")
    lines = [head, "-" * len(head)]

    def gender(agree: int | None, annotated: int) -> str:
        return "-" if agree is None or not annotated else f"{agree}/{annotated}"

    def of(counted: int, true: int | None) -> str:  # "counted/true", or counted alone
        return str(counted) if true is None else f"{counted}/{true}"

    for r in report["clips"]:
        lines.append(f"{r['clip'][:44]:<44} {r['true']:>6} {r['counted']:>7} {r['error']:>+5} "
                     f"{r['missed']:>6} {r['extra']:>5} "
                     f"{of(r['faces_counted'], r['faces_seen']):>7} "
                     f"{of(r['watchers'], r['watchers_true']):>8} {r['without_crop']:>7} "
                     f"{gender(r['genders_agreeing'], r['genders_annotated']):>7}")
    t = report["totals"]
    agree = t["genders_agreeing"] if t["genders_annotated"] else None
    lines.append("-" * len(head))
    lines.append(f"{'total (' + str(t['clips']) + ' clips)':<44} {t['true']:>6} "
                 f"{t['counted']:>7} {t['counted'] - t['true']:>+5} {t['under']:>6} "
                 f"{t['over']:>5} {t['faces_counted']:>7} {t['watchers']:>8} "
                 f"{t['without_crop']:>7} "
                 f"{gender(agree, t['genders_annotated']):>7}")
    lines.append(f"absolute error {t['abs_error']}; over-counted {t['over']} (extra tracks), "
                 f"under-counted {t['under']} (missed visitors); "
                 f"{t['exact']} of {t['clips']} clips exact, {t['within_1']} within 1")
    if t["watchers_judged_clips"]:
        lines.append(f"watchers (clips judged by eye): {t['watchers_judged_counted']} counted, "
                     f"{t['watchers_judged_true']} true; {t['watchers_judged_exact']} of "
                     f"{t['watchers_judged_clips']} clips exact")
    lines.append("faces and watchers: counted/true (true from the truth file where given)")
    return "\n".join(lines)
