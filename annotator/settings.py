"""One settings object, read from ``ANNOTATE_*`` environment variables in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOME = Path("~/.annotate")
DEFAULT_CHUNK_SIZE = 256
DEFAULT_QUEUE = "annotate"  # the queue chunks go to unless `--queue` or ANNOTATE_QUEUE names another
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
# Redis redelivers an unacknowledged task after this long; a late copy of a chunk already done or leased is ignored.
DEFAULT_VISIBILITY_TIMEOUT = 60 * 60
DEFAULT_LEASE_SECONDS = 60  # a chunk whose worker stopped renewing its lease this long goes to another worker
DEFAULT_HEARTBEAT_SECONDS = 10  # how often leases are renewed and sweeps run
DEFAULT_REQUEUE_SECONDS = 30  # a queued chunk nobody took this long, its queue empty, is sent again
DEFAULT_PRECISION = "float32"
PRECISIONS = (DEFAULT_PRECISION, "bfloat16", "float16")
"""Number formats the chain can run in: float32 everywhere; bfloat16 on CPUs with AVX-512 BF16 or AMX (and GPUs);
float16 on GPUs only (untested here)."""
DEFAULT_CHAIN_ENGINE = "xnnpack"
CHAIN_ENGINES = (DEFAULT_CHAIN_ENGINE, "tensorflow")
"""What runs a float32 chain on a host without a GPU: XNNPACK (LiteRT), or TensorFlow's own kernels. bfloat16,
float16 and GPU hosts run on TensorFlow whatever this says."""


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_decode_workers() -> int:
    """One extraction worker per CPU this process may run on."""
    return usable_cpus()


def home_from_env(environ: Mapping[str, str] | None = None) -> Path:
    """``ANNOTATE_HOME`` (default ``~/.annotate``): the model store, the SQLite database and caches."""
    env = os.environ if environ is None else environ
    return Path(env.get("ANNOTATE_HOME") or DEFAULT_HOME).expanduser()


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
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS
    requeue_seconds: int = DEFAULT_REQUEUE_SECONDS
    decode_workers: int = field(default_factory=default_decode_workers)
    precision: str = DEFAULT_PRECISION
    chain_engine: str = DEFAULT_CHAIN_ENGINE

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"ANNOTATE_PRECISION must be one of {', '.join(PRECISIONS)}. "
                             f"Received: ANNOTATE_PRECISION={self.precision!r}.")
        if self.chain_engine not in CHAIN_ENGINES:
            raise ValueError(f"ANNOTATE_CHAIN_ENGINE must be one of {', '.join(CHAIN_ENGINES)}. "
                             f"Received: ANNOTATE_CHAIN_ENGINE={self.chain_engine!r}.")
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError(f"ANNOTATE_HEARTBEAT_SECONDS ({self.heartbeat_seconds}) must be at most half of "
                             f"ANNOTATE_LEASE_SECONDS ({self.lease_seconds}), or leases expire between heartbeats.")

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
        home = home_from_env(env)
        database_url = env.get("ANNOTATE_DATABASE_URL") or f"sqlite:///{home / 'annotate.db'}"
        return cls(
            home=home,
            database_url=database_url,
            broker_url=env.get("ANNOTATE_BROKER_URL") or None,
            chunk_size=_int_from_env(env, "ANNOTATE_CHUNK_SIZE", DEFAULT_CHUNK_SIZE),
            max_image_pixels=_int_from_env(env, "ANNOTATE_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS),
            visibility_timeout=_int_from_env(env, "ANNOTATE_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT),
            lease_seconds=_int_from_env(env, "ANNOTATE_LEASE_SECONDS", DEFAULT_LEASE_SECONDS),
            heartbeat_seconds=_int_from_env(env, "ANNOTATE_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS),
            requeue_seconds=_int_from_env(env, "ANNOTATE_REQUEUE_SECONDS", DEFAULT_REQUEUE_SECONDS),
            decode_workers=_int_from_env(env, "ANNOTATE_DECODE_WORKERS", default_decode_workers()),
            precision=(env.get("ANNOTATE_PRECISION") or DEFAULT_PRECISION).lower(),
            chain_engine=(env.get("ANNOTATE_CHAIN_ENGINE") or DEFAULT_CHAIN_ENGINE).lower(),
        )
