"""Frame sources: video files (GIF included), image folders, network streams and webcams.

Every source is an iterable of ``(timestamp, frame)``: epoch seconds and a BGR uint8 frame,
sampled down to the configured analysis rate. File timestamps are ``start_time`` plus the
frame's position in the video, so dwell times are video time, not processing time; live
timestamps are the wall clock when the frame was read.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import cv2
import numpy as np
from tqdm import tqdm

from audience.core import images, preprocess
from audience.core.errors import InputError
from audience.core.placeholders import refuse_placeholder

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"})
LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})
# A failed grab followed by good frames is a corrupt frame; this many failures in a row is
# the end of the file (or a dead stream).
MAX_BAD_IN_A_ROW = 25
_ID_SPAN = 1 << 20  # bytes of each end of a video file that name it (identity())
# Network timeouts for live captures: the FFmpeg default (30 s) hides a dead camera too long.
LIVE_TIMEOUT_MS = 10_000

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(.*)@")
_SECRET_PARAM = re.compile(
    r"([?&;](?:password|passwd|pass|pwd|token|access_token|key|api_key|apikey|auth|secret|"
    r"signature|sig|user|username)=)[^&;#]*", re.IGNORECASE)


class SourceError(InputError):
    """A source cannot be opened or read. The message is one line: what is wrong, what to do."""


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the sources use (fakes in tests implement this)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name
    def grab(self) -> bool: ...
    def retrieve(self) -> tuple[bool, np.ndarray | None]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


CaptureFactory = Callable[[str | int], Capture]
Sleep = Callable[[float], None]
Clock = Callable[[], float]


def mask_credentials(spec: str) -> str:
    """``rtsp://user:pass@cam/x?token=t`` -> ``rtsp://***@cam/x?token=***`` for logs and errors.

    Masks up to the last ``@`` so that passwords containing ``@`` do not leak either.
    """
    spec = _USERINFO.sub(r"\1***@", spec)
    return _SECRET_PARAM.sub(r"\1***", spec)


def to_bgr(image: np.ndarray | None) -> np.ndarray | None:
    """Gray, BGR or BGRA (8 or 16 bit) to BGR uint8; None for anything unusable."""
    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        return None
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    try:
        return preprocess.to_bgr(image)
    except ValueError:  # another dtype or channel count: not a frame we can use
        return None


class _Sampler:
    """Keeps at most one frame per ``1/fps`` seconds (drops by timestamp, not by count)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._t0: float | None = None
        self._last = -1

    def want(self, t: float) -> bool:
        if self._t0 is None:
            self._t0 = t
        slot = int((t - self._t0) / self.period + 1e-6)  # 1e-6: float noise at slot borders
        if slot > self._last:
            self._last = slot
            return True
        return False


class FrameSource(ABC):
    """An iterable of ``(timestamp, BGR frame)``. ``skipped`` counts corrupt/empty frames."""

    kind: str = ""
    live: bool = False

    def __init__(self, name: str, fps: float) -> None:
        if fps <= 0:
            raise SourceError(f"fps must be positive, got {fps}: fix the camera's fps setting")
        self.name = name  #: printable: credentials masked
        self.fps = fps
        self.skipped = 0
        self.rescaled = 0  #: frames resized to the first frame's size
        self._size: tuple[int, int] | None = None  # (width, height) of the first frame

    @abstractmethod
    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]: ...

    def identity(self) -> str | None:
        """A digest that names this recording (None for a live source): a rerun of the same
        file gets the same track ids, so its visits are upserted, not added again. Never the
        path in clear."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps})"

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        """Every frame at the first frame's size: the tracker's boxes, the masks and an
        annotated video all assume one size (an image folder mixing sizes, a stream whose
        resolution changed on reconnect). Rescaled, not dropped: tracks continue."""
        h, w = frame.shape[:2]
        if self._size is None:
            self._size = (w, h)
            return frame
        if (w, h) == self._size:
            return frame
        if not self.rescaled:
            log.warning("%s: frame size changed from %dx%d to %dx%d; frames are rescaled to "
                        "the first size", self.name, *self._size, w, h)
        self.rescaled += 1
        return cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA
                          if w * h > self._size[0] * self._size[1] else cv2.INTER_LINEAR)

    def _report_skipped(self) -> None:
        if self.skipped:
            log.warning("%s: skipped %d corrupt or empty frame(s)", self.name, self.skipped)


def _default_capture(target: str | int) -> Capture:
    if isinstance(target, str) and _SCHEME.match(target):
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, LIVE_TIMEOUT_MS,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, LIVE_TIMEOUT_MS]
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(target)


class PillowGifCapture:
    """Reads an animated GIF with Pillow behind the ``cv2.VideoCapture`` interface.

    Fallback for OpenCV builds whose video backend cannot decode GIFs (OpenCV 5 with FFmpeg
    can). Positions follow the GIF's own per-frame durations.
    """

    def __init__(self, path: str | Path) -> None:
        from PIL import Image, ImageSequence

        try:
            self._image: Any = Image.open(path)
        except OSError:
            self._image = None
            return
        self._frames = ImageSequence.Iterator(self._image)
        self._n = int(getattr(self._image, "n_frames", 1))
        self._pos_ms = 0.0
        self._next_ms = 0.0
        self._index = 0
        self._current: np.ndarray | None = None

    def isOpened(self) -> bool:  # noqa: N802
        return self._image is not None

    def grab(self) -> bool:
        if self._image is None or self._index >= self._n:
            return False
        try:
            frame = self._frames[self._index]
            rgb = np.asarray(frame.convert("RGB"))
        except (OSError, ValueError, IndexError):
            self._current = None
            return False
        finally:
            self._index += 1
        self._pos_ms = self._next_ms
        self._next_ms += float(frame.info.get("duration") or 100)  # GIF default: 10 fps
        self._current = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        return True

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        return self._current is not None, self._current

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self._pos_ms
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(self._n)
        if prop == cv2.CAP_PROP_FPS:
            duration = self._image.info.get("duration") if self._image else None
            return 1000.0 / duration if duration else 10.0
        return 0.0

    def release(self) -> None:
        if self._image is not None:
            self._image.close()
            self._image = None


class VideoFileSource(FrameSource):
    """A video file (mp4, avi, mkv, GIF ...) read with OpenCV, with a Pillow fallback for GIFs."""

    kind = "file"

    def __init__(self, path: Path, fps: float, start_time: float, progress: bool = True,
                 capture_factory: CaptureFactory | None = None) -> None:
        super().__init__(str(path), fps)
        self.path = path
        self.start_time = start_time
        self.progress = progress
        self._factory = capture_factory or _default_capture
        cap = self._open()  # fail now, at configuration time, not on the first frame
        cap.release()

    def identity(self) -> str | None:
        """The file's size and its first and last MiB (not the path: a copy is the same
        recording; not all of it: videos are large)."""
        digest = hashlib.sha256(b"file\0")
        try:
            size = self.path.stat().st_size
            with self.path.open("rb") as fh:
                digest.update(f"{size}\0".encode())
                digest.update(fh.read(_ID_SPAN))
                if size > 2 * _ID_SPAN:
                    fh.seek(-_ID_SPAN, 2)
                    digest.update(fh.read(_ID_SPAN))
        except OSError:
            return None
        return digest.hexdigest()

    def _open(self) -> Capture:
        cap = self._factory(str(self.path))
        if cap.isOpened():
            return cap
        cap.release()
        if self.path.suffix.lower() == ".gif":
            gif = PillowGifCapture(self.path)
            if gif.isOpened():
                return gif
        raise SourceError(f"cannot read video file {self.path}: the file is corrupt or in "
                          "an unsupported format; re-encode it (e.g. H.264 mp4)")

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        cap = self._open()
        native_fps = cap.get(cv2.CAP_PROP_FPS)
        native_fps = native_fps if 0 < native_fps < 1000 else 25.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        sampler = _Sampler(self.fps)
        self.skipped = 0
        index, good, bad_in_a_row, last_t = 0, 0, 0, -1.0
        bar = tqdm(total=total if total > 0 else None, unit="frame", desc=self.path.name,
                   file=sys.stderr, disable=not self.progress, leave=False)
        try:
            while bad_in_a_row < MAX_BAD_IN_A_ROW:
                if not cap.grab():
                    bad_in_a_row += 1
                    index += 1
                    continue
                # Failed grabs followed by a good one were corrupt frames, not the end.
                self.skipped += max(0, bad_in_a_row)
                bad_in_a_row = 0
                bar.update(1)
                t = self._position(cap, index, native_fps, last_t)
                index += 1
                last_t = t
                if not sampler.want(t):
                    continue
                ok, frame = cap.retrieve()
                frame = to_bgr(frame) if ok else None
                if frame is None:
                    self.skipped += 1
                    continue
                good += 1
                yield self.start_time + t, self._fit(frame)
        finally:
            bar.close()
            cap.release()
        grabbed = index - bad_in_a_row
        if self._truncated(total, grabbed):
            self.skipped += 1  # at least the cut frame; counted, and said once
            log.warning("%s is truncated: %d frames read%s; the rest of the video is missing "
                        "(copy the file again)", self.path, grabbed,
                        f" of {total} announced" if total > grabbed else "")
        self._report_skipped()
        if good == 0:
            raise SourceError(f"no frames could be decoded from {self.path}: the file is empty "
                              "or corrupt; check it plays in a video player")

    def _truncated(self, announced: int, grabbed: int) -> bool:
        """Fewer frames than the container announced, or a GIF without its trailer byte
        (FFmpeg reads a GIF cut in half as a shorter GIF, silently)."""
        if announced > 0 and grabbed < announced - 1:
            return True
        try:
            with self.path.open("rb") as fh:
                if fh.read(4) != b"GIF8":
                    return False
                fh.seek(-1, 2)
                return fh.read(1) != b";"
        except OSError:
            return False

    @staticmethod
    def _position(cap: Capture, index: int, native_fps: float, last_t: float) -> float:
        """Seconds into the video: the decoder's position, or frame index / fps if it has none."""
        t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if np.isfinite(t) and t >= 0 and (t > last_t or (index == 0 and last_t < 0)):
            return t
        return max(index / native_fps, last_t + 1.0 / native_fps)


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", path.name)]


class ImageFolderSource(FrameSource):
    """Sorted image files (natural order: 2 before 10) played as frames at ``fps``."""

    kind = "folder"

    def __init__(self, folder: Path, fps: float, start_time: float, progress: bool = True) -> None:
        super().__init__(str(folder), fps)
        self.start_time = start_time
        self.progress = progress
        self.files = sorted((p for p in folder.iterdir()
                             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                            key=_natural_key)
        if not self.files:
            raise SourceError(f"no image files in folder {folder}: expected "
                              f"{', '.join(sorted(IMAGE_SUFFIXES))}")

    def identity(self) -> str | None:
        """The images' names (not the folder's) and sizes, in frame order."""
        digest = hashlib.sha256(b"folder\0")
        try:
            for path in self.files:
                digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        except OSError:
            return None
        return digest.hexdigest()

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        self.skipped = 0
        good = 0
        files = tqdm(self.files, unit="frame", desc=Path(self.name).name, file=sys.stderr,
                     disable=not self.progress, leave=False)
        try:
            for i, path in enumerate(files):
                # IMREAD_UNCHANGED keeps gray and alpha so that to_bgr converts them properly.
                # The header first: a huge image is skipped without being decoded.
                try:
                    frame = to_bgr(images.read_image(path, cv2.IMREAD_UNCHANGED))
                except images.ImageTooLargeError as exc:
                    log.warning("%s: skipped", exc)
                    frame = None
                if frame is None:
                    self.skipped += 1
                    continue
                good += 1
                yield self.start_time + i / self.fps, self._fit(frame)
        finally:
            files.close()
        self._report_skipped()
        if good == 0:  # like a video of which no frame decodes
            raise SourceError(f"no image in folder {self.name} could be decoded: the "
                              f"{len(self.files)} file(s) are corrupt, too large or not "
                              "images; check them in an image viewer")


class LiveSource(FrameSource):
    """An rtsp(s)/http(s) stream or a webcam; reconnects with exponential backoff."""

    live = True

    def __init__(self, target: str | int, fps: float, reconnect_max_s: float = 30.0,
                 reconnect_attempts: int = 0, sleep: Sleep = time.sleep, clock: Clock = time.time,
                 capture_factory: CaptureFactory | None = None,
                 stop: threading.Event | None = None) -> None:
        name = f"webcam {target}" if isinstance(target, int) else mask_credentials(target)
        super().__init__(name, fps)
        self.kind = "webcam" if isinstance(target, int) else "stream"
        self._target = target  # may hold credentials: never log it, log self.name
        self.reconnect_max_s = reconnect_max_s
        self.reconnect_attempts = reconnect_attempts
        self._sleep = sleep
        self._clock = clock
        self._factory = capture_factory or _default_capture
        self.reconnects = 0  #: reconnect attempts so far (for monitoring)
        # Set on SIGTERM/Ctrl-C: the stream ends at once, even while it waits to reconnect.
        self._stop = stop

    def backoff(self, attempt: int) -> float:
        """Wait before reconnect ``attempt`` (1-based): 1, 2, 4 ... s, capped at the maximum."""
        return float(min(self.reconnect_max_s, 2.0 ** min(attempt - 1, 30)))

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        sampler = _Sampler(self.fps)
        self.skipped = 0
        cap: Capture | None = None
        attempt, bad_in_a_row, ever_opened = 0, 0, False
        try:
            while not self._stopped():
                if cap is None:
                    cap = self._factory(self._target)
                    if not cap.isOpened():
                        cap.release()
                        cap = None
                ok = cap is not None and cap.grab()
                if ok:
                    assert cap is not None
                    t = self._clock()
                    if not sampler.want(t):
                        attempt, bad_in_a_row, ever_opened = 0, 0, True
                        continue
                    good, frame = cap.retrieve()
                    frame = to_bgr(frame) if good else None
                    if frame is not None:
                        if attempt or not ever_opened:  # the pair of "reconnecting" warnings
                            log.info("%s %s: receiving frames", self.kind, self.name)
                        attempt, bad_in_a_row, ever_opened = 0, 0, True
                        yield t, self._fit(frame)
                        continue
                    self.skipped += 1
                    bad_in_a_row += 1
                    if bad_in_a_row < MAX_BAD_IN_A_ROW:
                        continue
                # The stream failed (or never opened): back off, then reopen it.
                if cap is not None:
                    cap.release()
                    cap = None
                bad_in_a_row = 0
                attempt += 1
                self.reconnects += 1
                if self.reconnect_attempts and attempt > self.reconnect_attempts:
                    raise SourceError(
                        f"{self.kind} {self.name} unavailable after {self.reconnect_attempts} "
                        "reconnect attempts: check the camera, the network and the URL")
                delay = self.backoff(attempt)
                what = "dropped" if ever_opened else "cannot be opened"
                log.warning("%s %s %s; reconnecting in %g s (attempt %d)",
                            self.kind, self.name, what, delay, attempt)
                if self._stop is not None:
                    self._stop.wait(delay)  # a stop request ends the wait, not the backoff
                else:
                    self._sleep(delay)
        finally:
            if cap is not None:
                cap.release()
            self._report_skipped()

    def _stopped(self) -> bool:
        return self._stop is not None and self._stop.is_set()


def open_source(spec: str | Path, fps: float, *, start_time: float | None = None,
                progress: bool = True, reconnect_max_s: float = 30.0,
                reconnect_attempts: int = 0, sleep: Sleep = time.sleep,
                clock: Clock = time.time,
                capture_factory: CaptureFactory | None = None,
                stop: threading.Event | None = None) -> FrameSource:
    """Open a video file, image folder, rtsp(s)/http(s) URL or webcam index ("0").

    ``start_time`` (epoch seconds, default now) anchors file timestamps. ``sleep``, ``clock``
    and ``capture_factory`` are injectable for tests. ``stop`` ends a live source at once
    (its reconnect backoff waits on it). Raises :class:`SourceError`.
    """
    text = str(spec).strip()
    if not text:
        raise SourceError("no camera source configured: set source to a video file, image "
                          "folder, rtsp:// or http(s):// URL, or webcam index")
    scheme = _SCHEME.match(text)
    if scheme:
        try:
            password = urlsplit(text).password
        except ValueError:
            password = None
        if password is not None:  # .env.example's rtsp://viewer:change-me@... kept as is
            refuse_placeholder(password, "the password in the camera's source URL "
                               "(camera.source; CAMERA_<NAME>_SOURCE in .env)",
                               "the camera's own password")
        if scheme.group(1).lower() not in LIVE_SCHEMES:
            raise SourceError(
                f"unsupported source scheme {scheme.group(1)!r} in {mask_credentials(text)}: "
                f"use one of {', '.join(sorted(LIVE_SCHEMES))}, a file path or a webcam index")
        return LiveSource(text, fps, reconnect_max_s, reconnect_attempts, sleep, clock,
                          capture_factory, stop)
    if text.isdigit():
        return LiveSource(int(text), fps, reconnect_max_s, reconnect_attempts, sleep, clock,
                          capture_factory, stop)
    path = Path(text).expanduser()
    start = time.time() if start_time is None else start_time
    if path.is_dir():
        return ImageFolderSource(path, fps, start, progress)
    if not path.exists():
        raise SourceError(f"source not found: {path}: check the path (video file, image folder, "
                          "URL or webcam index)")
    if not path.is_file():
        raise SourceError(f"source {path} is not a regular file or folder: point it at a "
                          "video file or an image folder")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise SourceError(f"cannot read {path} ({exc.strerror}): check its permissions") from None
    return VideoFileSource(path, fps, start, progress, capture_factory)
