"""Shared pieces of the service tests: photos to submit and the exactly-once check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Prediction

ATTRIBUTES = 4


def write_photos(folder: Path, count: int, side: int = 120, seed: int = 0) -> None:
    """``count`` random PNGs of ``side`` pixels (aligned portraits as far as ``--faces aligned`` cares)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"p{index:04d}.png")


def assert_exactly_once(factory: sessionmaker[Session], images: int) -> None:
    """Every image has one prediction per attribute, none twice."""
    with factory() as session:
        total = session.scalar(select(func.count()).select_from(Prediction))
        distinct = session.scalar(select(func.count()).select_from(
            select(Prediction.face_id, Prediction.attribute).distinct().subquery()))
    assert total == distinct == images * ATTRIBUTES, (total, distinct, images * ATTRIBUTES)
