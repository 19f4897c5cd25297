"""`make demo`'s story: the bundled clip through the real pipeline, a seeded synthetic week in
the same store, and a report that shows real charts at k=5 and says that data is synthetic."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path

import pytest
from browser import chromium
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from audience.cli import app
from audience.reports.report import SYNTHETIC_NOTE, build_report
from audience.storage.db import open_engine
from audience.storage.demo_data import SYNTHETIC, fill_demo_store, has_synthetic, synthetic_visits
from audience.storage.schema import VisitRow

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "ingest" / "assets" / "face-demographics-walking-and-pause.gif"
SCREENSHOT = ROOT / "out" / "demo-report.png"  # README's reports/demo-report.png is a copy
END = date(2026, 11, 30)


def _invoke(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    """What `make demo` runs, command for command: (database URL, report path, its text)."""
    out = tmp_path_factory.mktemp("demo")
    url, html = f"sqlite:///{out / 'demo.db'}", out / "demo-report.html"
    _invoke("run", "--source", str(CLIP), "--store", "demo-store", "--camera", "entrance",
            "--db", url, "--no-progress")
    _invoke("demo-data", "--store", "demo-store", "--db", url)
    text = _invoke("report", "--store", "demo-store", "--db", url, "--out", str(html))
    return url, html, text


def test_generator_is_seeded_and_marked_synthetic() -> None:
    first = list(synthetic_visits("s", days=7, end=END, seed=7))
    again = list(synthetic_visits("s", days=7, end=END, seed=7))
    other = list(synthetic_visits("s", days=7, end=END, seed=8))
    assert [v.track_id for v in first] == [v.track_id for v in again]
    assert [v.track_id for v in first] != [v.track_id for v in other]
    assert {v.model_version for v in first} == {SYNTHETIC}
    assert {v.camera_id for v in first} == {"synthetic"}
    assert {v.started_at.date() for v in first} == {date(2026, 11, d) for d in range(23, 30)}
    assert 300 < len(first) < 2000  # a plausible week for a small store


def test_filling_twice_writes_the_same_rows(engine: Engine) -> None:
    first = fill_demo_store(engine, "demo-store", end=END)
    assert fill_demo_store(engine, "demo-store", end=END).visits == first.visits
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(VisitRow)).scalar_one()
    assert n == first.visits
    assert has_synthetic(engine, "demo-store")
    assert not has_synthetic(engine, "other-store")


@pytest.mark.slow
def test_demo_report_shows_genders_at_k5_and_says_synthetic(demo: tuple[str, Path, str]
                                                            ) -> None:
    url, html, text = demo
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            by_model = dict(conn.execute(select(VisitRow.model_version, func.count())
                                         .group_by(VisitRow.model_version)).all())
        report = build_report(engine, "demo-store", k=5)
    finally:
        engine.dispose()
    assert by_model.pop(SYNTHETIC) > 300
    assert list(by_model.values()) == [3]  # the clip's 3 visitors, labelled by the model
    shown = [g for g, n in report.gender.counts.items() if g != "unknown" and n > 0]
    assert len(shown) >= 2, report.gender
    assert report.synthetic
    page = html.read_text()
    assert 'class="synthetic"' in page and "synthetic visits" in page
    assert " ".join(SYNTHETIC_NOTE.split()) in " ".join(text.split())  # the table says it too


@pytest.mark.slow
def test_demo_report_in_headless_chromium(demo: tuple[str, Path, str], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _, html, _ = demo
    browser = chromium(tmp_path / "chrome", size=(1000, 1500))
    try:
        browser.get(html.as_uri())
        banner = browser.find_element(By.CSS_SELECTOR, ".synthetic")
        assert banner.is_displayed() and SYNTHETIC_NOTE in banner.text
        charts = browser.find_elements(By.TAG_NAME, "img")
        assert len(charts) == 6  # footfall, passers-by and watchers, dwell, age, gender, emotion
        assert all(browser.execute_script("return arguments[0].naturalWidth", c) > 0
                   for c in charts)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))
        assert SCREENSHOT.stat().st_size > 20_000
    finally:
        browser.quit()


def test_make_demo_installs_no_training_stack() -> None:
    """`make demo` installs the base package only, whose dependencies hold no TensorFlow."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    heavy = re.compile(r"^(tensorflow|tf2onnx|keras|onnx\b|torch)", re.IGNORECASE)
    assert not [d for d in project["dependencies"] if heavy.match(d)]
    assert any(heavy.match(d) for d in project["optional-dependencies"]["train"])
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: demo-env\b", make, re.MULTILINE)
    recipe = make.split("$(DEMO_STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"pip install .* -e \.$", recipe, re.MULTILINE), recipe
