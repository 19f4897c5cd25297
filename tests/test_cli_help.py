"""The CLI's help and version: placeholders such as <store> survive the Markdown rendering,
flags carry no <bool> noise, `audience --version` works."""

from __future__ import annotations

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
