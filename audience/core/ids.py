"""The one rule for store, camera and track ids, at every intake.

The same rule guards the command line and config (``--store``, ``--camera``), Kafka messages
and the row-level-security filters of the dashboards (``store_id = '<id>'``): an id that one
of them accepts, all of them accept. ASCII letters, digits and ``. _ : -``, 1 to 64
characters. That is enough for names such as ``north-1`` or ``paris:entrance`` and uuid4
track ids, and it leaves out everything that has bitten us: quotes (SQL in an RLS clause),
``/`` and spaces (file names), ``[`` (rich markup), control characters and trailing
newlines (``$`` matches before one: the rule uses fullmatch), lone surrogates
(``"\\ud800"``, which PostgreSQL's driver cannot encode) and names too long for a file name.
"""

from __future__ import annotations

import re

from audience.core.errors import InputError

MAX_ID = 64
ID_PATTERN = rf"[A-Za-z0-9._:-]{{1,{MAX_ID}}}"
_ID = re.compile(ID_PATTERN)
RULE = f"1 to {MAX_ID} ASCII letters, digits and . _ : -"


class IdError(InputError):
    """An id breaks the id rule; the message names the field, never echoes a long value."""


def is_valid_id(value: object) -> bool:
    """True if ``value`` is a str that fully matches the id rule (no trailing newline)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: object, what: str = "id") -> str:
    """``value`` if it is a valid id, else IdError saying what the rule is."""
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    text = ascii(value)  # ascii(): a control character or surrogate is shown, not printed
    shown = text if len(text) <= 40 else text[:37] + "..."
    raise IdError(f"{what} {shown} is not a valid id: use {RULE}")
