"""The labels published tables are cut by: plain constants, so that the command line can name
them (``segments --by``) without loading the database or the linear-programming stack that
``storage.published`` needs."""

from __future__ import annotations

UNKNOWN = "unknown"  #: the label of a visit without one (no usable crop)
#: The labels of the linked tables (``linked_hidden``): every ``segments --by`` is some of them.
#: looked: whether a visitor looked at the camera ('watcher', 'not watching', or 'unknown':
#: attention not measured), the same expression as the report_attention_daily view (0008).
LABELS = ("age_bracket", "gender", "emotion", "looked")
MOST_LABELS = 3  #: a published table has one to three of them (``segments --by``)
