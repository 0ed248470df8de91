"""Fixtures: a migrated temporary SQLite database, eager settings, and small untrained model chains."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from annotator.settings import Settings
from db.migrate import upgrade
from db.session import make_engine, make_session_factory, transaction

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Eager settings with a private home and SQLite database, also exported to the environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("ANNOTATE_HOME", str(home))
    monkeypatch.setenv("ANNOTATE_DATABASE_URL", f"sqlite:///{tmp_path / 'annotate.db'}")
    monkeypatch.delenv("ANNOTATE_BROKER_URL", raising=False)
    monkeypatch.delenv("ANNOTATE_CHUNK_SIZE", raising=False)
    return Settings.from_env()


@pytest.fixture
def factory(settings: Settings) -> sessionmaker[Session]:
    """A session factory on the migrated test database."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def register_untrained_chain(factory: sessionmaker[Session], settings: Settings) -> list[int]:
    """Register and activate an untrained, seeded model for every spec; returns their version ids."""
    import keras

    from annotator.architectures import build_model
    from annotator.specs import chain_order
    from annotator.store import register_model

    keras.utils.set_random_seed(7)
    with transaction(factory) as session:
        records = [register_model(session, settings.models_dir, spec, build_model(spec), metrics={"test": True})
                   for spec in chain_order()]
        return [r.id for r in records]


@pytest.fixture
def untrained_chain(factory: sessionmaker[Session], settings: Settings) -> list[int]:
    """An untrained chain registered in the test database."""
    return register_untrained_chain(factory, settings)


def write_faces(folder: Path, count: int, *, seed: int = 0, size: int = 120, fmt: str = "PNG") -> list[Path]:
    """Write ``count`` random RGB images named face_000.png ... into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    suffix = {"PNG": "png", "JPEG": "jpg"}[fmt]
    paths = []
    for index in range(count):
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        path = folder / f"face_{index:03d}.{suffix}"
        Image.fromarray(pixels).save(path, fmt)
        paths.append(path)
    return paths
