"""A live local stream for signal tests: the bundled clip's frames as an endless MJPEG over
HTTP (multipart/x-mixed-replace, what many IP cameras serve), at the clip's own pace."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageSequence

CLIP = Path(__file__).resolve().parents[1] / "ingest" / "assets" / \
    "face-demographics-walking-and-pause.gif"
BOUNDARY = b"frame"


def clip_jpegs(path: Path = CLIP) -> list[tuple[bytes, float]]:
    """(JPEG bytes, seconds to show it) per frame of the GIF."""
    out = []
    with Image.open(path) as gif:
        for frame in ImageSequence.Iterator(gif):
            bgr = cv2.cvtColor(np.asarray(frame.convert("RGB")),
                               cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
            assert ok
            out.append((buf.tobytes(), float(frame.info.get("duration") or 100) / 1000))
    return out


@contextmanager
def mjpeg_stream(speed: float = 1.0) -> Iterator[str]:
    """Serve the clip in a loop on 127.0.0.1; yields the stream URL."""
    frames = clip_jpegs()
    stopping = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type",
                             f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
            self.end_headers()
            try:
                while not stopping.is_set():
                    for jpeg, seconds in frames:
                        self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                                         + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                                         + jpeg + b"\r\n")
                        self.wfile.flush()
                        if stopping.wait(seconds / speed):
                            return
            except (BrokenPipeError, ConnectionResetError):
                return

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()


if __name__ == "__main__":  # manual check: python tests/mjpeg_server.py
    with mjpeg_stream() as url:
        print(url, flush=True)
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        n, t0 = 0, time.monotonic()
        while n < 30 and cap.grab():
            n += 1
        print(cap.isOpened(), n, "frames in", round(time.monotonic() - t0, 2), "s")
