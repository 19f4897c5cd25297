"""One import name: the lint step of `make test` (ruff, TID251) refuses `import storage` and
the like, so no module is loaded twice under two names."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")


def _ruff(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUFF, "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                           str(path)], capture_output=True, text=True, timeout=60)


def test_every_linked_stage_is_banned_under_its_own_name():
    linked = {p.name for p in (ROOT / "audience").iterdir() if p.is_symlink()}
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "TID251" in lint["select"]
    assert linked == set(lint["flake8-tidy-imports"]["banned-api"]) == {
        "storage", "ingest", "inference", "reports", "models"}


@pytest.mark.parametrize("line", [
    "import storage",
    "import storage.schema",
    "from storage.schema import visits",
    "from ingest import detect",
    "import inference.analyzer as analyzer",
    "from reports.report import render",
    "import models.train",
])
def test_the_lint_step_refuses_a_top_level_stage_import(tmp_path, line):
    bad = tmp_path / "bad.py"
    bad.write_text(f"def f() -> object:\n    {line}\n    return locals()\n")
    res = _ruff(bad)
    assert res.returncode == 1 and "TID251" in res.stdout and "one import name" in res.stdout, (
        res.stdout + res.stderr)


def test_the_lint_step_accepts_the_package_name(tmp_path):
    good = tmp_path / "good.py"
    good.write_text("import audience.storage.schema\nfrom audience.models import card\n\n"
                    "print(audience.storage.schema, card)\n")
    res = _ruff(good)
    assert res.returncode == 0, res.stdout + res.stderr
