"""The wire format of a finished track on Kafka: versioned JSON, crops as lossless PNG.

    {"schema": "audience.track/2", "store_id": ..., "camera_id": ..., "track_id": ...,
     "started_at": 1715000000.0, "ended_at": ..., "n_detections": 17, "produced_at": ...,
     "crops": [{"png": "<base64>", "quality": 0.83, "score": 0.95, "timestamp": ...}, ...],
     "attention_s": 1.6, "watcher": true}

``attention_s`` (seconds the person faced the camera) and ``watcher`` are optional: a message
without them (an older camera) is a visit whose attention is unknown.

Crops are the aligned 48x48 faces (BGR colour from the camera; gray is read too), best
first. They live only in Kafka (short retention) and memory: never log a message body.

Lossless, so a distributed run labels exactly what an embedded run labels: even JPEG at
quality 100 moved one visit's emotion between two close classes with model 1.1.0. On the
bundled clip a 48x48 colour crop is 4.0-4.3 KB as PNG (gray: 1.4-1.5 KB) and a 5-crop message
about 28 KB. Workers still read ``audience.track/1`` (crops as "jpeg"), so a rolling upgrade
loses nothing that is in Kafka.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
from typing import Any

import cv2
import numpy as np

from audience.core.errors import InputError
from audience.core.face import Face, Track
from audience.core.ids import RULE as ID_RULE
from audience.core.ids import is_valid_id
from audience.core.images import ImageTooLargeError, header_size
from audience.core.kafka_config import MAX_MESSAGE_BYTES
from audience.core.preprocess import INPUT_SIZE

log = logging.getLogger(__name__)

SCHEMA = "audience.track/2"
#: schema -> the key its crops are under (both decode with cv2.imdecode)
CROP_KEYS = {"audience.track/1": "jpeg", SCHEMA: "png"}
MAX_EPOCH = 1e11  # seconds before the year 5138
MAX_DWELL_S = 86_400.0  # a track longer than a day is not a visit
MAX_CROPS = 50  # the tracker keeps at most 50 (camera.tracker.best_k)
MAX_DETECTIONS = 10_000_000  # 60 fps for 24 h is 5.2 million
_IDS = ("store_id", "camera_id", "track_id")
_TIMES = ("started_at", "ended_at")
# attention_s and watcher: optional (a camera that does not measure attention omits them).
_KEYS = frozenset({"schema", *_IDS, *_TIMES, "n_detections", "produced_at", "crops",
                   "attention_s", "watcher"})
_CROP_NUMBERS = ("quality", "score", "timestamp")


class MessageError(InputError):
    """A message cannot be encoded or decoded; the text is the reason (no message content)."""


def _png(crop: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", crop)
    if not ok:
        raise MessageError("a crop could not be PNG-encoded")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def encode_track(track: Track, max_bytes: int = MAX_MESSAGE_BYTES,
                 produced_at: float | None = None) -> bytes:
    """Serialise a track. If the message would exceed ``max_bytes`` the worst crops are
    dropped (faces are best first) until it fits; never returns an oversize message."""
    # The track's end on the camera: latency is measured from here, encoding included.
    produced = time.time() if produced_at is None else float(produced_at)
    crops = [{"png": _png(f.crop), "quality": float(f.quality), "score": float(f.score),
              "timestamp": float(f.timestamp)}
             for f in track.faces if f.crop is not None]
    body: dict[str, Any] = {
        "schema": SCHEMA, "store_id": track.store_id, "camera_id": track.camera_id,
        "track_id": track.track_id, "started_at": float(track.started_at),
        "ended_at": float(track.ended_at), "n_detections": int(track.n_detections),
        "produced_at": produced,
        "crops": crops,
    }
    if track.attention_s is not None:
        body["attention_s"] = float(track.attention_s)
        body["watcher"] = bool(track.watcher)
    total = len(crops)
    while True:
        data = json.dumps(body, separators=(",", ":")).encode()
        if len(data) <= max_bytes:
            break
        if not body["crops"]:
            raise MessageError(f"track {track.track_id}: message is {len(data)} bytes without "
                               f"any crop, above max_message_bytes={max_bytes}")
        body["crops"].pop()  # the worst crop
    if len(body["crops"]) < total:
        log.warning("track %s: dropped %d of %d crops to fit max_message_bytes=%d",
                    track.track_id, total - len(body["crops"]), total, max_bytes)
    return data


def _number(value: Any, name: str, lo: float = -math.inf, hi: float = math.inf,
            what: str = "out of range") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageError(f"field {name!r} has the wrong type: must be a finite number")
    if isinstance(value, float) and not math.isfinite(value):
        raise MessageError(f"field {name!r} must be a finite number")
    # compared as given: float() of a huge int (10**400) would raise OverflowError
    if not lo <= value <= hi:
        raise MessageError(f"field {name!r} is {what}")
    return float(value)


def _crop(i: int, item: Any, key: str) -> Face:
    if not isinstance(item, dict) or not isinstance(item.get(key), str):
        raise MessageError(f"crop {i} must be an object with a base64 {key!r} string")
    unknown = set(item) - {key, *_CROP_NUMBERS}
    if unknown:
        raise MessageError(f"crop {i}: unknown key(s) {_names(unknown)}")
    try:
        raw = base64.b64decode(item[key], validate=True)
    except (binascii.Error, ValueError):
        raise MessageError(f"crop {i}: {key!r} is not valid base64") from None
    # The header first: a small PNG may claim a huge size (a decompression bomb).
    try:
        size = header_size(raw, f"crop {i}") if raw else None
    except ImageTooLargeError as exc:
        raise MessageError(str(exc)) from None
    if size is None:
        raise MessageError(f"crop {i}: not a decodable 8-bit {key.upper()} image")
    if size != (INPUT_SIZE, INPUT_SIZE):
        raise MessageError(f"crop {i}: size {size[0]}x{size[1]}, expected "
                           f"{INPUT_SIZE}x{INPUT_SIZE}")
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint8:
        raise MessageError(f"crop {i}: not a decodable 8-bit {key.upper()} image")
    if img.shape[:2] != (INPUT_SIZE, INPUT_SIZE):
        raise MessageError(f"crop {i}: size {img.shape[1]}x{img.shape[0]}, expected "
                           f"{INPUT_SIZE}x{INPUT_SIZE}")
    if img.ndim == 3 and img.shape[2] != 3:
        raise MessageError(f"crop {i}: {img.shape[2]} channels, expected gray or BGR")
    return Face(box=np.zeros(4, np.float32), landmarks=np.zeros((5, 2), np.float32),
                score=_number(item.get("score", 0.0), f"crops[{i}].score"),
                timestamp=_number(item.get("timestamp", 0.0), f"crops[{i}].timestamp",
                                  0, MAX_EPOCH, "not a plausible epoch time"),
                quality=_number(item.get("quality", 0.0), f"crops[{i}].quality"), crop=img)


def _names(keys: set[Any]) -> str:
    # Key names come from the sender: bounded and ascii() so a log line stays one short line.
    return ", ".join(sorted(ascii(k)[:40] for k in keys)[:5])


def decode_track(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Track:
    """Parse and validate a message; raises :class:`MessageError` with the reason."""
    return decode_message(data, max_bytes)[0]


def decode_message(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES
                   ) -> tuple[Track, float | None]:
    """The track and the time its camera worker produced it (epoch seconds, if known)."""
    body = decode_body(data, max_bytes)
    crops = body.get("crops")
    if not isinstance(crops, list):
        raise MessageError("field 'crops' must be a list")
    if len(crops) > MAX_CROPS:
        raise MessageError(f"{len(crops)} crops, more than {MAX_CROPS}")
    key = CROP_KEYS[body["schema"]]
    faces = [_crop(i, item, key) for i, item in enumerate(crops)]
    for face in faces:
        face.track_id = body["track_id"]
    track = Track(camera_id=body["camera_id"], store_id=body["store_id"],
                  track_id=body["track_id"], started_at=float(body["started_at"]),
                  ended_at=float(body["ended_at"]), n_detections=body["n_detections"],
                  faces=faces, attention_s=body.get("attention_s"), watcher=body.get("watcher"))
    produced = body.get("produced_at")
    return track, None if produced is None else float(produced)


def decode_body(data: bytes | None, max_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """The JSON object with its schema and scalar fields checked (crops not decoded).

    Strict: at most ``max_bytes``, no unknown key, ids by the id rule
    (:mod:`audience.core.ids`), times plausible epochs at most a day apart, counts bounded.
    """
    if not data:
        raise MessageError("empty message")
    if len(data) > max_bytes:
        raise MessageError(f"message of {len(data)} bytes, above max_message_bytes={max_bytes}")
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"not valid JSON ({type(exc).__name__} at position "
                           f"{getattr(exc, 'pos', getattr(exc, 'start', '?'))})") from None
    except RecursionError:  # e.g. [[[[...]]]] nested deeper than the interpreter's stack
        raise MessageError("not valid JSON (nested too deeply)") from None
    if not isinstance(body, dict):
        raise MessageError("not a JSON object")
    schema = body.get("schema")
    if not isinstance(schema, str) or schema not in CROP_KEYS:  # [] is unhashable: no `in`
        raise MessageError(f"unsupported schema {ascii(body.get('schema'))[:40]}, "
                           f"expected one of {sorted(CROP_KEYS)}")
    unknown = set(body) - _KEYS
    if unknown:
        raise MessageError(f"unknown key(s) {_names(unknown)}")
    for name in (*_IDS, *_TIMES, "n_detections"):
        if name not in body:
            raise MessageError(f"missing field {name!r}")
    for name in _IDS:
        if not is_valid_id(body[name]):
            # The database or an RLS filter would refuse such ids (NUL, a lone surrogate).
            raise MessageError(f"field {name!r} is not a valid id: {ID_RULE}")
    for name in _TIMES:
        _number(body[name], name, 0, MAX_EPOCH, "not a plausible epoch time")
    n = body["n_detections"]
    if isinstance(n, bool) or not isinstance(n, int):
        raise MessageError("field 'n_detections' has the wrong type")
    if n < 0:
        raise MessageError("field 'n_detections' is negative")
    if n > MAX_DETECTIONS:
        raise MessageError(f"field 'n_detections' is above {MAX_DETECTIONS}")
    if body["ended_at"] < body["started_at"]:
        raise MessageError("ended_at is before started_at")
    if body["ended_at"] - body["started_at"] > MAX_DWELL_S:
        raise MessageError(f"track longer than {MAX_DWELL_S:.0f} s")
    if body.get("produced_at") is not None:
        _number(body["produced_at"], "produced_at", 0, MAX_EPOCH, "not a plausible epoch time")
    if body.get("attention_s") is not None:
        body["attention_s"] = _number(body["attention_s"], "attention_s", 0, MAX_DWELL_S)
    if body.get("watcher") is not None and not isinstance(body["watcher"], bool):
        raise MessageError("field 'watcher' has the wrong type: must be true or false")
    return body
