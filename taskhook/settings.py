"""Settings: one validated, frozen object built once at start from `TASKHOOK_*`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from taskhook.errors import ConfigError


class Settings(BaseSettings):
    """Every field is an environment variable `TASKHOOK_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="TASKHOOK_", frozen=True, extra="ignore")

    host: str = Field("127.0.0.1", description="Address the receiver listens on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the receiver (0: any free).")
    database_url: str | None = Field(
        None,
        description="PostgreSQL 14+ DSN. Unset: an embedded PostgreSQL in data_dir/pgdata.",
    )
    data_dir: Path = Field(
        Path(".taskhook"), description="Folder for the embedded database and generated secrets."
    )
    db_pool_min: int = Field(2, ge=1, le=100, description="Smallest database pool size.")
    db_pool_max: int = Field(16, ge=1, le=500, description="Largest database pool size.")
    max_body_bytes: int = Field(
        5 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes (else 413)."
    )
    log_format: str = Field(
        "auto", pattern="^(auto|json|console)$", description="auto: console on a TTY, else JSON."
    )
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")


def load_settings(**overrides: object) -> Settings:
    """Build the settings; a bad value stops the start with a message that names it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"TASKHOOK_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid setting: {problems}") from None
