"""Report settings: k, its floor, store time zones."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from audience.core.config import Strict
from audience.storage.timezones import zone

K_FLOOR = 5  #: the smallest k any output uses unless a config explicitly lowers `k_floor`


class ReportConfig(Strict):
    k: int = Field(K_FLOOR, ge=2, description="Groups with fewer visitors than k are suppressed "
                   "in every report, so no report can single out a person.")
    k_floor: int = Field(K_FLOOR, ge=2, description="The smallest k any command accepts "
                         "(`--k` below it is raised to it). Lower it only on purpose, e.g. 2 "
                         "for a demo on a clip with three visitors; never for real stores.")
    timezones: dict[str, str] = Field(default_factory=dict, description="Store id -> IANA time "
                                      "zone ('Europe/Berlin'); reports and views bucket that "
                                      "store's visits by local hour and day. Default: UTC.")
    out_dir: str = Field("reports/out", description="Where HTML reports are written.")

    @field_validator("timezones")
    @classmethod
    def _known_zones(cls, value: dict[str, str]) -> dict[str, str]:
        for store, name in value.items():
            try:
                zone(name)
            except ValueError as exc:
                raise ValueError(f"store {store!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _k_above_floor(self) -> ReportConfig:
        if self.k < self.k_floor:
            raise ValueError(f"k={self.k} is below k_floor={self.k_floor}: set k_floor too if "
                             "you really mean it (demos only, never real stores)")
        return self

    def effective_k(self, requested: int | None) -> tuple[int, str | None]:
        """k to use for a `--k` value (None: the configured k), and a note when it was raised
        to the floor."""
        if requested is None:
            return self.k, None
        if requested < self.k_floor:
            return self.k_floor, (f"--k {requested} is below the floor of {self.k_floor}: using "
                                  f"k={self.k_floor} (a config file may lower report.k_floor, "
                                  "for demos only)")
        return requested, None
