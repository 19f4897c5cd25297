"""What every command prints for ``--json``: one JSON document per line on stdout."""

from __future__ import annotations

import json

import typer


def echo_json(obj: object) -> None:
    """One line of JSON; values JSON has no type for (datetimes, paths) as their text."""
    typer.echo(json.dumps(obj, default=str))
