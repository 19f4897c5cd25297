"""The documents hold their shape: a short front door, one page per reader, links that resolve,
the licences on the front page, and words about the product rather than about how the work
was organised."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["store-manager.md", "marketer.md", "operations.md", "benchmarks.md", "development.md",
         "configuration.md"]
LINKED = ["README.md", "CHANGELOG.md", "THIRD_PARTY.md", "models/MODEL_CARD.md",
          *(f"docs/{p}" for p in PAGES), "docs/accuracy.md", "docs/explain.md",
          "experiments/README.md"]


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    # the two quick-start commands, exactly as CI (.ci/run: `make test`) and users call them
    assert "make demo   # " in text and "make test   # " in text
    assert "research-only" in text and "THIRD_PARTY.md" in text and "LICENSE" in text
    for page in PAGES[:-1]:
        assert f"docs/{page}" in text, page


def test_licences_are_at_the_root():
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    third = (ROOT / "THIRD_PARTY.md").read_text()
    for name in ("audience-mt-2.4.0-int8.onnx", "face_detection_yunet_2023mar.onnx",
                 "FER-2013", "FER+", "UTKFace"):
        assert name in third, name


@pytest.mark.parametrize("page", LINKED)
def test_relative_links_resolve(page):
    path = ROOT / page
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{page}: {target}"


#: Words about how the work was organised, not about the product (a database, HTTP or ONNX
#: Runtime session is code, and is not matched).
ORGANISATION = r"\bstops? [0-9]|\bissue [0-9]|\bother sessions?\b|\b(this|that|a later|an " \
    r"earlier|the same) session\b|\bsession [0-9]"


def test_no_words_about_how_the_work_was_organised():
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    res = subprocess.run(["git", "grep", "-nIiE", ORGANISATION, "--", ".", ":!CHANGELOG.md"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and not res.stdout, res.stdout[:2000]
