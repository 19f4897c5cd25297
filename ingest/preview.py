"""The live view (`audience run --preview`): a local web page with the camera's frames as
MJPEG, boxes, track ids, exclusion masks and live counts, for installers placing a camera
and drawing masks.

Privacy: only the latest annotated frame is held, in memory, as one JPEG; nothing is written
to disk or logged; the server binds 127.0.0.1 unless told otherwise (and warns then). It is
opt-in: nothing starts unless ``--preview`` is given.
"""

from __future__ import annotations

import errno
import html
import json
import logging
import threading
import time
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from audience.core.errors import InputError
from audience.core.face import Face
from audience.ingest.annotate import annotate_frame

if TYPE_CHECKING:
    from audience.ingest.camera import CameraStage

log = logging.getLogger(__name__)

BOUNDARY = "frame"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>audience live view: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem; background: #111; color: #eee; }}
img {{ max-width: 100%; border: 1px solid #444; }}
#counts {{ font: 1rem monospace; }}
.note {{ color: #aaa; font-size: .85rem; }}
</style></head>
<body>
<h1>Live view: {title}</h1>
<img id="live" src="/stream.mjpg" alt="camera {title}, annotated">
<p id="counts">waiting for the first frame</p>
<p class="note">Green: a tracked face with a usable crop; orange: tracked, no crop (blurred,
turned, unsure); red: exclusion masks (faces inside are ignored). Frames stay in this
process's memory only (the latest one); nothing is recorded.</p>
<script>
async function poll() {{
  try {{
    const c = await (await fetch("/counts", {{cache: "no-store"}})).json();
    document.getElementById("counts").textContent =
      `frames ${{c.frames}} | faces now ${{c.faces_now}} | in view ${{c.in_view}} | ` +
      `visits ended ${{c.visits}} | masked ${{c.masked}}` + (c.done ? " | source ended" : "");
  }} catch (e) {{}}
  setTimeout(poll, 500);
}}
poll();
</script>
</body></html>
"""


class LiveView:
    """A camera-stage frame observer serving the annotated frames on ``url``.

    ``pace``: hold each frame until its timestamp comes round on the wall clock, so a file
    plays at its own speed (live sources are already paced: no wait).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8090, title: str = "camera",
                 pace: bool = True, quality: int = 80) -> None:
        self.title = title
        self.pace = pace
        self.quality = quality
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None  # the latest annotated frame: the only one kept
        self._seq = 0
        self._counts: dict[str, Any] = {"frames": 0, "faces_now": 0, "in_view": 0,
                                        "visits": 0, "masked": 0, "done": False}
        self._clock: tuple[float, float] | None = None  # (first frame timestamp, wall time)
        self._closed = False
        try:
            self.server = ThreadingHTTPServer((host, port), partial(_Handler, self))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(f"live view: port {port} on {host} is in use: pass another "
                                 "--preview-port") from None
            raise InputError(f"live view: cannot listen on {host}:{port} ({exc.strerror}): "
                             "check --preview-host") from None
        self.server.daemon_threads = True
        if not _loopback(self.host):
            log.warning("live view on %s: anyone who can reach this address sees the camera",
                        self.url)
        self._thread = threading.Thread(target=self.server.serve_forever, name="live-view",
                                        daemon=True)

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}/"

    def start(self) -> LiveView:
        self._thread.start()
        return self

    def __call__(self, stage: CameraStage, frame: np.ndarray, timestamp: float,
                 faces: list[Face]) -> None:
        if self.pace:
            self._wait_for(timestamp)
        ok, jpeg = cv2.imencode(".jpg", annotate_frame(stage, frame, faces),
                                [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return
        c = stage.counters
        with self._cond:
            self._jpeg = jpeg.tobytes()
            self._seq += 1
            self._counts.update(frames=c.frames, faces_now=len(faces),
                                in_view=stage.tracker.active, visits=c.tracks,
                                masked=c.masked)
            self._cond.notify_all()

    def _wait_for(self, timestamp: float) -> None:
        now = time.monotonic()
        if self._clock is None:
            self._clock = (timestamp, now)
            return
        delay = (timestamp - self._clock[0]) - (now - self._clock[1])
        if 0 < delay < 5:  # a jump (reconnect, long gap) is not waited out
            time.sleep(delay)

    def done(self, visits: int | None = None) -> None:
        """The source ended: the page keeps the last frame and says so."""
        with self._cond:
            self._counts["done"] = True
            if visits is not None:
                self._counts["visits"] = visits
            self._cond.notify_all()

    def counts(self) -> dict[str, Any]:
        with self._cond:
            return dict(self._counts)

    def next_frame(self, seen: int, timeout: float = 1.0) -> tuple[int, bytes | None]:
        """Block until a frame newer than ``seen`` (or timeout); returns (seq, jpeg)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seen or self._closed, timeout)
            return self._seq, self._jpeg

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._jpeg = None
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    @property
    def closed(self) -> bool:
        return self._closed


def _loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, view: LiveView, *args: Any, **kwargs: Any) -> None:
        self.view = view
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("live view: " + format, *args)

    def _send(self, body: bytes, ctype: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        path = self.path.split("?", 1)[0]
        if path == "/":
            page = PAGE.format(title=html.escape(self.view.title))
            self._send(page.encode(), "text/html; charset=utf-8")
        elif path == "/counts":
            self._send(json.dumps(self.view.counts()).encode(), "application/json")
        elif path == "/frame.jpg":
            _, jpeg = self.view.next_frame(-1, timeout=0)
            if jpeg is None:
                self._send(b"no frame yet", "text/plain", 503)
            else:
                self._send(jpeg, "image/jpeg")
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self._send(b"not found", "text/plain", 404)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = -1
        try:
            self.wfile.write(f"--{BOUNDARY}\r\n".encode())
            while not self.view.closed:
                seq, jpeg = self.view.next_frame(seen)
                if jpeg is None or seq == seen:
                    continue
                seen = seq
                # The closing boundary right after the image: browsers show a part once the
                # next boundary arrives, so this frame appears now, not with the next one.
                self.wfile.write(f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                                 f"\r\n\r\n".encode() + jpeg + f"\r\n--{BOUNDARY}\r\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away
