"""Report settings."""

from __future__ import annotations

from pydantic import Field

from audience.core.config import Strict


class ReportConfig(Strict):
    k: int = Field(5, ge=2, description="Groups with fewer visitors than k are suppressed in every "
                   "report, so no report can single out a person.")
    out_dir: str = Field("reports/out", description="Where HTML reports are written.")
