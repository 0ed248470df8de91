"""Small inline pictures of chosen faces: each face cut again from its file exactly as its job cut it.

Only the faces a report shows are decoded (a few dozen, whatever the size of the run). A face whose file is
gone or changed since it was annotated gets no picture, and says why, instead of showing other pixels.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.faces.detection import Detection
from annotator.faces.extraction import ImageToExtract, extract_faces
from annotator.faces.modes import FaceMode, FaceOptions
from annotator.images.decoding import DecodeError
from db.models import Face, Image

THUMBNAIL_SIDE = 96
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Thumbnail:
    """One face to show: its picture (None when the file cannot give it), where it comes from."""

    face_id: int
    path: str
    sha256: str
    index: int
    method: str
    picture: str | None  # a data URI
    problem: str | None = None

    @property
    def link(self) -> str:
        """A ``file://`` URL of the image (opening it needs no network)."""
        path = Path(self.path)
        return path.as_uri() if path.is_absolute() else self.path


def _data_uri(pixels: np.ndarray) -> str:
    image = PILImage.fromarray(pixels)
    image = image.resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def recorded_face_pixels(path: str, sha256: str, method: str, box: list[float] | None,
                         landmarks: list[list[float]] | None, score: float | None, *, max_pixels: int) -> np.ndarray:
    """The aligned 120x120 face as its job computed it (raises :class:`DecodeError`)."""
    options = FaceOptions.from_method(method)
    known = [] if options.mode is FaceMode.ALIGNED or box is None or landmarks is None else [
        Detection(tuple(box), np.asarray(landmarks, np.float64), score or 0.0)]  # type: ignore[arg-type]
    faces = extract_faces(ImageToExtract(Path(path), sha256, known), options, max_pixels=max_pixels)
    return faces[0].pixels


def thumbnails(session: Session, face_ids: Sequence[int], *, max_pixels: int) -> dict[int, Thumbnail]:
    """A thumbnail of each of ``face_ids`` (each face decoded once however often it is shown)."""
    wanted = sorted({int(i) for i in face_ids})
    rows = session.execute(select(Face.id, Face.index, Face.method, Face.box, Face.landmarks, Face.score,
                                  Image.path, Image.sha256)
                           .join(Image, Image.id == Face.image_id).where(Face.id.in_(wanted))).all()
    found: dict[int, Thumbnail] = {}
    for face_id, index, method, box, landmarks, score, path, sha256 in rows:
        try:
            pixels = recorded_face_pixels(path, sha256, method, box, landmarks, score, max_pixels=max_pixels)
            found[face_id] = Thumbnail(face_id, path, sha256, index, method, _data_uri(pixels))
        except DecodeError as error:
            found[face_id] = Thumbnail(face_id, path, sha256, index, method, None,
                                       f"{error.failure.reason.value}: {error.failure.detail}")
    return found
