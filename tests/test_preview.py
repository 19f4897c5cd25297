"""The live view (`audience run --preview`): a local page with the annotated frames (MJPEG)
and live counts, checked in headless Chromium; frames in memory only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser import chromium
from kafka_broker import free_port
from typer.testing import CliRunner

from audience.cli import app
from audience.core.errors import InputError
from audience.ingest.camera import CameraStage
from audience.ingest.config import CameraConfig
from audience.ingest.preview import LiveView

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "ingest" / "assets" / "face-demographics-walking-and-pause.gif"
SCREENSHOT = ROOT / "out" / "preview.png"


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (local test)
        return resp.read()


def test_run_help_offers_the_preview() -> None:
    res = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "--preview" in res.output and "--preview-port" in res.output


def test_live_view_serves_the_latest_frame_on_loopback() -> None:
    view = LiveView(port=0, pace=False).start()
    try:
        assert view.host == "127.0.0.1"
        stage = CameraStage(CameraConfig())
        cap = cv2.VideoCapture(str(CLIP))
        for _ in range(3):
            ok, frame = cap.read()
            assert ok
            stage.process(frame, time.time())
            view(stage, frame, time.time(), [])
        cap.release()
        jpeg = cv2.imdecode(np.frombuffer(_get(view.url + "frame.jpg"), np.uint8),
                            cv2.IMREAD_COLOR)
        assert jpeg.shape == frame.shape
        counts = json.loads(_get(view.url + "counts"))
        assert counts["frames"] == 3 and counts["faces_now"] == 0 and not counts["done"]
        assert b"/stream.mjpg" in _get(view.url)
    finally:
        view.close()


def test_a_busy_port_is_one_line() -> None:
    first = LiveView(port=0)
    try:
        with pytest.raises(InputError, match="in use: pass another --preview-port"):
            LiveView(port=first.server.server_address[1])
    finally:
        first.server.server_close()


@pytest.mark.slow
def test_run_preview_in_headless_chromium(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    work = tmp_path / "run"
    work.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "audience", "run", "--source", str(CLIP), "--no-progress",
         "--db", "sqlite:///run.db", "--preview", "--preview-port", str(port)],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    browser = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(url + "counts", timeout=1)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no live view"
                time.sleep(0.2)
        browser = chromium(tmp_path / "chrome", size=(700, 600))
        browser.get(url)
        wait = WebDriverWait(browser, 60)
        img = browser.find_element(By.ID, "live")
        wait.until(lambda b: b.execute_script("return arguments[0].naturalWidth", img) == 480)
        counts = browser.find_element(By.ID, "counts")
        wait.until(lambda b: "source ended" in counts.text)
        assert "frames 17" in counts.text and "visits ended 3" in counts.text, counts.text
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))
    finally:
        if browser is not None:
            browser.quit()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "3 visits stored" in out
    assert sorted(p.name for p in work.iterdir()) == ["run.db"]  # no frame on disk
