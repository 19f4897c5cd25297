"""The CLI's help and version: placeholders such as <store> survive the Markdown rendering,
flags carry no <bool> noise, `audience --version` works, and `--help` starts without the
heavy libraries the commands load when they run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audience import __version__
from audience.cli import app

COMMANDS = [[], ["run"], ["analyze"], ["report"], ["segments"], ["demo-data"], ["export"],
            ["bench", "camera"], ["bench", "pipeline"], ["db", "upgrade"], ["infer"],
            ["evaluate", "counting"]]


def _help(args: list[str]) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200",
                                                           "TERMINAL_WIDTH": "200"})
    assert res.exit_code == 0, res.output
    return res.output


def test_version() -> None:
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"audience {__version__}"


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "root")
def test_flags_show_no_bool_type(args: list[str]) -> None:
    assert "<bool>" not in _help(args)


@pytest.mark.parametrize(("args", "text"), [
    (["report"], "report-<store>.html"),
    (["export"], "manifest <name>.json"),
    (["segments"], "--png <file>"),  # inside a code span in the source: kept as well
])
def test_placeholders_survive(args: list[str], text: str) -> None:
    assert text in _help(args)


#: Loaded by the commands that need them, never to print help (each costs 0.1 to 1 s).
HEAVY = ("scipy", "matplotlib", "tensorflow", "keras", "numpy", "cv2", "onnxruntime",
         "sqlalchemy", "alembic", "requests", "pandas")


@pytest.mark.parametrize("args", [[], ["report"], ["segments"], ["db"], ["train"]],
                         ids=lambda a: " ".join(a) or "root")
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    code = ("import sys; from audience.cli import main; sys.argv = ['audience', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    res = subprocess.run([sys.executable, "-c", code, *args, "--help"], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout[-300:]
