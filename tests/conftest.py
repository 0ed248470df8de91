"""Fixtures: a migrated temporary SQLite database, eager settings, and small untrained model chains."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from annotator.settings import Settings
from db.migrate import upgrade
from db.session import make_engine, make_session_factory, transaction

# The `s3` fixture: a real S3 server (moto) for the tests of images in object stores.
pytest_plugins = ("tests.object_store",)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def private_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home for the whole run, so nothing a test does (such as caching MTCNN's converted networks) lands in the
    user's ``~/.annotate``; the ``settings`` fixture gives each test a home of its own on top."""
    home = tmp_path_factory.mktemp("session-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANNOTATE_HOME", str(home))
        yield home


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

    from annotator.models.architectures import build_model
    from annotator.models.specs import chain_order
    from annotator.models.store import register_model

    keras.utils.set_random_seed(7)
    with transaction(factory) as session:
        records = [register_model(session, settings.home, spec, build_model(spec), metrics={"test": True})
                   for spec in chain_order()]
        return [r.id for r in records]


def register_version(factory: sessionmaker[Session], settings: Settings, name: str) -> int:
    """Register and activate a new untrained version of model ``name``; returns its version number."""
    from annotator.models.architectures import build_model
    from annotator.models.specs import get_spec
    from annotator.models.store import register_model

    with transaction(factory) as session:
        return register_model(session, settings.home, get_spec(name), build_model(get_spec(name)),
                              metrics={"test": True}).version


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


def fake_chain(factory: sessionmaker[Session]) -> dict[str, int]:
    """Active version rows for every spec with no model file behind them (for tests that run no model)."""
    from annotator.models.specs import chain_order
    from db.models import ModelVersion

    with transaction(factory) as session:
        versions = [ModelVersion(name=spec.name, version=1, path="no file", sha256="0" * 64, input_spec={},
                                 metrics={"test": True}, active=True) for spec in chain_order()]
        session.add_all(versions)
        session.flush()
        return {v.name: v.id for v in versions}


def record_annotations(factory: sessionmaker[Session], paths: list[Path],
                       values: list[dict[str, float]] | None = None) -> dict[str, str]:
    """Record ``paths`` as annotated aligned portraits with the given (default 0.9 / female 0.1) predictions by
    the active chain, without running a model; returns {file name: sha256}."""
    from sqlalchemy import select

    from annotator.images.discovery import hash_file
    from db.models import Face, Image, ModelVersion, Prediction

    shas = {}
    with transaction(factory) as session:
        active = dict(session.execute(select(ModelVersion.name, ModelVersion.id).where(ModelVersion.active)).all())
        for position, path in enumerate(paths):
            sha, size, fmt = hash_file(path)
            shas[path.name] = sha
            face = Face(image=Image(sha256=sha, path=str(path), size=size, format=fmt), method="aligned", index=0)
            session.add(face)
            session.flush()
            chosen = {"gender": 0.1, "eyes": 0.9, "mouth": 0.9, "background_mean": 0.9,
                      **(values[position] if values else {})}
            for name, version_id in active.items():
                female = chosen[name] if name == "gender" else None
                session.add(Prediction(
                    face_id=face.id, attribute=name, value=1 - female if name == "gender" else chosen[name],
                    extra={"male_prob": 1 - female, "female_prob": female} if name == "gender" else None,
                    model_version_id=version_id, gender_version_id=active["gender"]))
    return shas
