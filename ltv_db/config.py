"""Configuration from the environment and an optional TOML file — never from code.

Precedence: environment variables, then the config file (``LTV_CONFIG`` or ``./ltv.toml``),
then defaults. Secrets (passwords inside URLs) are only ever shown through :func:`redact`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV_DATABASE_URL = "LTV_DATABASE_URL"
ENV_REDIS_URL = "LTV_REDIS_URL"
ENV_HOME = "LTV_HOME"
ENV_CONFIG = "LTV_CONFIG"


@dataclass(frozen=True)
class Settings:
    """Where ltv_db finds its services.

    ``database_url`` / ``redis_url`` are ``None`` when the embedded private servers under
    ``home`` should be used instead.
    """

    home: Path
    database_url: str | None
    redis_url: str | None
    database_name: str = "ltv"


def _read_file(path: Path) -> dict[str, object]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    section = data.get("ltv_db", data)
    if not isinstance(section, dict):
        raise ValueError(f"{path}: [ltv_db] must be a table")
    return section


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    file_values: dict[str, object] = {}
    config_path = env.get(ENV_CONFIG)
    if config_path:
        file_values = _read_file(Path(config_path))
    elif Path("ltv.toml").is_file():
        file_values = _read_file(Path("ltv.toml"))

    def pick(env_key: str, file_key: str) -> str | None:
        value = env.get(env_key) or file_values.get(file_key)
        return str(value) if value else None

    home = Path(pick(ENV_HOME, "home") or ".ltv").resolve()
    return Settings(
        home=home,
        database_url=pick(ENV_DATABASE_URL, "database_url"),
        redis_url=pick(ENV_REDIS_URL, "redis_url"),
    )


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` — the only form that may be printed."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
