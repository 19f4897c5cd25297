"""The whole application's configuration: one YAML file, overridden by environment variables.

``AUDIENCE_CAMERA__FPS=10`` overrides ``camera.fps``; ``DATABASE_URL`` (the convention of
most hosting platforms) overrides ``database.url``. Unknown keys are errors.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from audience.core.errors import ConfigError
from audience.core.kafka_config import KafkaConfig
from audience.inference.config import AnalyzerConfig
from audience.ingest.config import CameraConfig
from audience.reports.config import ReportConfig
from audience.storage.config import DatabaseConfig


class AppConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIENCE_", env_nested_delimiter="__",
                                      extra="forbid")

    camera: CameraConfig = Field(default_factory=CameraConfig, description="The camera stage.")
    analyzer: AnalyzerConfig = Field(default_factory=AnalyzerConfig, description="Inference.")
    database: DatabaseConfig = Field(default_factory=DatabaseConfig, description="Storage.")
    report: ReportConfig = Field(default_factory=ReportConfig, description="Reports.")
    kafka: KafkaConfig = Field(default_factory=KafkaConfig,
                               description="Scaled-out pipeline: Kafka topics and workers.")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings  # environment wins over the YAML file


def _format(exc: ValidationError, origin: str, prefix: str = "") -> str:
    parts = []
    for err in exc.errors():
        where = ".".join([prefix] * bool(prefix) + [str(p) for p in err["loc"]]) or "(top level)"
        msg = "unknown key (check the spelling)" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{where}: {msg}")
    return f"invalid configuration in {origin}: " + "; ".join(parts)


def load_config(path: str | Path | None = None) -> AppConfig:
    """Read a YAML config (optional), apply environment overrides, validate."""
    data: dict = {}
    origin = "defaults/environment"
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found: pass an existing YAML file "
                              "(examples in deploy/config/)")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {p} is not UTF-8 text (byte {exc.start}): save it "
                              "as UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {p} ({exc.strerror}): check its "
                              "permissions") from None
        except RecursionError:
            raise ConfigError(f"config file {p} is nested too deeply") from None
        except yaml.YAMLError as exc:
            # one line: the problem and where, not PyYAML's multi-line excerpt
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ConfigError(f"config file {p} is not valid YAML ({problem}{at})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping of sections "
                              "(camera, analyzer, database, report, kafka)")
        origin = str(p)
    if os.environ.get("DATABASE_URL"):
        data.setdefault("database", {})["url"] = os.environ["DATABASE_URL"]
    try:
        return AppConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, origin)) from exc
    except SettingsError as exc:  # AUDIENCE_CAMERA=notjson: a section must be a JSON object
        raise ConfigError(f"invalid environment: {_env_problem(exc)}: a whole section in one "
                          "variable must be a JSON object; or set one key, e.g. "
                          "AUDIENCE_CAMERA__FPS=10") from None


def _env_problem(exc: SettingsError) -> str:
    # 'error parsing value for field "camera" from source "EnvSettingsSource"': no value echoed
    field = str(exc).split('field "', 1)[-1].split('"', 1)[0] if 'field "' in str(exc) else ""
    return f"AUDIENCE_{field.upper()} is not valid JSON" if field else "a variable is not valid"


def apply_overrides(cfg: AppConfig, overrides: dict[str, dict[str, object]]) -> AppConfig:
    """Apply command-line values (which win over file and environment), re-validating each
    touched section."""
    for section, values in overrides.items():
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            continue
        model = getattr(cfg, section)
        try:
            setattr(cfg, section, type(model).model_validate({**model.model_dump(), **values}))
        except ValidationError as exc:
            raise ConfigError(_format(exc, "command-line options", section)) from exc
    return cfg


def load_settings(path: str | Path | None,
                  overrides: dict[str, dict[str, object]] | None = None) -> AppConfig:
    """The config file (optional), then the environment, then command-line values."""
    return apply_overrides(load_config(path), overrides or {})
