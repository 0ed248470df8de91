"""One settings object, read from ``ANNOTATE_*`` environment variables in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("~/.annotate")
DEFAULT_CHUNK_SIZE = 256
DEFAULT_QUEUE = "annotate"  # the queue chunks go to unless `--queue` or ANNOTATE_QUEUE names another
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
DEFAULT_STALL_SECONDS = 15 * 60
# Redis redelivers an unacknowledged task after this long; it must exceed the slowest chunk.
DEFAULT_VISIBILITY_TIMEOUT = 60 * 60


def _int_from_env(environ: dict[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number. Received: {name}={raw!r}.") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1. Received: {name}={raw!r}.")
    return value


@dataclass(frozen=True)
class Settings:
    """Where things live and how work is run."""

    home: Path
    database_url: str
    broker_url: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    stall_seconds: int = DEFAULT_STALL_SECONDS
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT

    @property
    def models_dir(self) -> Path:
        """Folder of the model store."""
        return self.home / "models"

    @property
    def eager(self) -> bool:
        """True when tasks run in the submitting process (no broker configured)."""
        return self.broker_url is None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from ``ANNOTATE_*`` variables (defaults: SQLite under ``~/.annotate``, eager)."""
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("ANNOTATE_HOME") or DEFAULT_HOME).expanduser()
        database_url = env.get("ANNOTATE_DATABASE_URL") or f"sqlite:///{home / 'annotate.db'}"
        return cls(
            home=home,
            database_url=database_url,
            broker_url=env.get("ANNOTATE_BROKER_URL") or None,
            chunk_size=_int_from_env(env, "ANNOTATE_CHUNK_SIZE", DEFAULT_CHUNK_SIZE),
            max_image_pixels=_int_from_env(env, "ANNOTATE_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS),
            stall_seconds=_int_from_env(env, "ANNOTATE_STALL_SECONDS", DEFAULT_STALL_SECONDS),
            visibility_timeout=_int_from_env(env, "ANNOTATE_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT),
        )
