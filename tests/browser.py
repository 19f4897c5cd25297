"""Headless Chromium for page tests (Debian's chromium + chromedriver, `make browser`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def chromium(user_data: Path, size: tuple[int, int] = (1100, 1600)) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("Chromium is missing: `make browser` installs Debian's chromium and "
                    "chromium-driver", pytrace=False)
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (*FLAGS, f"--user-data-dir={user_data}", f"--window-size={size[0]},{size[1]}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)
