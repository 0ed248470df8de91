"""Data-quality measures of aligned faces: brightness, sharpness and detector score, with the flags they raise.

Computed once per face, in NumPy over a whole batch, where the chunk pipeline already holds the aligned pixels,
and stored in ``face_quality``; faces recorded before that get theirs from :func:`backfill_quality`. The
measures look at the middle of the 120x120 face (rows 20:110, columns 25:95: brows to chin, little
background), in grey (ITU-R 601 luma):

- brightness: the mean grey level in 0..1; UTKFace's aligned faces lie between 0.19 and 0.82 (1st-99th
  percentile 0.28-0.77), so below :data:`DARK_BELOW` or above :data:`BRIGHT_ABOVE` is a very dark or bright face;
- sharpness: the variance of the 4-neighbour Laplacian of the grey levels on a 0..255 scale; real faces have a
  median of 110 and a 1st percentile of 14, and a Gaussian blur of 2 pixels takes them to a median of 7,
  hence :data:`BLURRY_BELOW`;
- detector score: MTCNN's confidence; real faces score above 0.99, so below :data:`LOW_SCORE_BELOW` is a
  doubtful face (aligned portraits have no score).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Row, exists, select
from sqlalchemy.orm import Session, sessionmaker

from annotator.faces.detection import Detection
from annotator.faces.extraction import ImageToExtract, extract_faces
from annotator.faces.modes import FaceMode, FaceOptions
from annotator.images.decoding import DecodeError, unit_floats
from db.models import Face, FaceQuality, Image
from db.queries import insert_ignoring_conflicts
from db.session import transaction

DARK_BELOW = 0.2
BRIGHT_ABOVE = 0.85
BLURRY_BELOW = 15.0
LOW_SCORE_BELOW = 0.95
FLAGS = ("dark", "bright", "blurry", "low_score")
"""The flag columns of ``face_quality``, in the order the report shows them."""

_CENTRE = (slice(20, 110), slice(25, 95))
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class QualityMeasures:
    """Per-face measures of a batch, as arrays of one value per face."""

    brightness: np.ndarray
    sharpness: np.ndarray


def measure_faces(pixels: np.ndarray) -> QualityMeasures:
    """Brightness and sharpness of aligned faces ``(n, 120, 120, 3)``, uint8 or float in 0..1, all at once."""
    faces = unit_floats(pixels)
    if faces.ndim != 4 or faces.shape[-1] != 3:
        raise ValueError(f"Expected faces of shape (n, height, width, 3). Received: shape={faces.shape}.")
    grey = (faces[:, _CENTRE[0], _CENTRE[1]] @ _LUMA) * 255.0
    laplacian = (grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
                 - 4.0 * grey[:, 1:-1, 1:-1])
    return QualityMeasures(grey.mean(axis=(1, 2)) / 255.0, laplacian.var(axis=(1, 2)))


def flag_values(brightness: np.ndarray, sharpness: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean arrays per flag; a NaN score (an aligned portrait) is never low."""
    scores = np.asarray(scores, np.float64)
    return {
        "dark": np.asarray(brightness) < DARK_BELOW,
        "bright": np.asarray(brightness) > BRIGHT_ABOVE,
        "blurry": np.asarray(sharpness) < BLURRY_BELOW,
        "low_score": ~np.isnan(scores) & (np.nan_to_num(scores, nan=1.0) < LOW_SCORE_BELOW),
    }


def quality_rows(face_ids: Sequence[int], pixels: np.ndarray, scores: Sequence[float | None]) -> list[dict[str, Any]]:
    """``face_quality`` rows for faces with their pixels and detector scores (None for aligned portraits)."""
    if not len(face_ids):
        return []
    measures = measure_faces(pixels)
    score_array = np.array([np.nan if s is None else s for s in scores], np.float64)
    flags = flag_values(measures.brightness, measures.sharpness, score_array)
    return [
        {"face_id": int(face_id), "brightness": round(float(measures.brightness[i]), 4),
         "sharpness": round(float(measures.sharpness[i]), 2), **{name: bool(flags[name][i]) for name in FLAGS}}
        for i, face_id in enumerate(face_ids)
    ]


def unmeasurable_row(face_id: int) -> dict[str, Any]:
    """The row of a face whose file cannot be read any more: measured once, as unknown, never retried."""
    return {"face_id": face_id, "brightness": None, "sharpness": None, **{name: False for name in FLAGS}}


BACKFILL_BATCH = 256
"""Images decoded per transaction when measuring faces recorded before the measures existed."""


def _unmeasured(session: Session, where: ColumnElement[bool] | None) -> list[Row[Any]]:
    query = (select(Face.id, Face.image_id, Face.method, Face.index, Face.box, Face.landmarks, Face.score,
                    Image.path, Image.sha256)
             .join(Image, Image.id == Face.image_id)
             .where(~exists().where(FaceQuality.face_id == Face.id)))
    if where is not None:
        query = query.where(where)
    return list(session.execute(query.order_by(Face.image_id, Face.method, Face.index)))


def _measure_image(rows: Sequence[Row[Any]], max_pixels: int) -> list[dict[str, Any]]:
    """Quality rows of the faces of one image by one method, from the file as the job decoded it."""
    first = rows[0]
    options = FaceOptions.from_method(first.method)
    known = [] if options.mode is FaceMode.ALIGNED else [
        Detection(tuple(row.box), np.asarray(row.landmarks, np.float64), row.score) for row in rows]
    try:
        faces = extract_faces(ImageToExtract(Path(first.path), first.sha256, known), options, max_pixels=max_pixels)
    except DecodeError:
        return [unmeasurable_row(row.id) for row in rows]
    by_index = {face.index: face.pixels for face in faces}
    if options.mode is FaceMode.ALIGNED:
        by_index = {row.index: by_index[0] for row in rows}
    else:  # known detections come back in their recorded order, index 0 first
        by_index = {row.index: faces[position].pixels for position, row in enumerate(rows)}
    return quality_rows([row.id for row in rows], np.stack([by_index[row.index] for row in rows]),
                        [row.score for row in rows])


def backfill_quality(factory: sessionmaker[Session], *, max_pixels: int, where: ColumnElement[bool] | None = None,
                     on_progress: Callable[[int, int], None] | None = None) -> int:
    """Measure every face (matching ``where``, a filter on :class:`Face`) that has no quality row; returns how many.

    Files that cannot be read any more get a row of unknown measures, so they are not tried again.
    ``on_progress(done, total)`` is called after every batch of images.
    """
    with factory() as session:
        rows = _unmeasured(session, where)
    groups = [list(group) for _, group in groupby(rows, key=lambda row: (row.image_id, row.method))]
    done = 0
    for start in range(0, len(groups), BACKFILL_BATCH):
        measured = [item for group in groups[start:start + BACKFILL_BATCH] for item in _measure_image(group, max_pixels)]
        with transaction(factory) as session:
            insert_ignoring_conflicts(session, FaceQuality, measured)
        done += len(measured)
        if on_progress is not None:
            on_progress(done, len(rows))
    return done
