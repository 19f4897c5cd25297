"""The base of every config model: typed sections, unknown keys rejected."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base for every config model in the project: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")
