"""The aligned 120x120 face of each exported row, for the formats that carry images (tfrecord, folders)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from annotator.errors import ExportError
from annotator.exports.query import FaceRow
from annotator.faces.alignment import align_face
from annotator.faces.modes import FaceMode
from annotator.images.decoding import MAX_IMAGE_PIXELS, DecodeError, decode_face, decode_photo

JPEG_QUALITY = 95
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}


def aligned_faces(rows: Sequence[FaceRow], *, max_pixels: int = MAX_IMAGE_PIXELS) -> Iterator[np.ndarray]:
    """Each row's aligned face, (120, 120, 3) float32 in 0..1, in row order.

    Aligned portraits are resized as a job resizes them; detected faces are warped again from their recorded
    landmarks, exactly as the job warped them. The recorded SHA-256 makes sure the pixels are the ones the
    values were computed from.
    """
    photo_of: tuple[str, Image.Image] | None = None  # rows of one image are adjacent: decode it once
    for row in rows:
        try:
            if row.method == FaceMode.ALIGNED.value:
                yield decode_face(row.path, max_pixels=max_pixels, expected_sha256=row.sha256)
                continue
            if photo_of is None or photo_of[0] != row.sha256:
                photo_of = (row.sha256, decode_photo(row.path, max_pixels=max_pixels,
                                                     expected_sha256=row.sha256))
            yield align_face(photo_of[1], np.asarray(row.landmarks, np.float64))
        except DecodeError as error:
            raise ExportError(f"Cannot read the face of {row.path}: {error.failure.reason.value}, "
                              f"{error.failure.detail}.") from None


def encode_face(face: np.ndarray, image_format: str = "png") -> bytes:
    """A face in 0..1 as PNG (lossless) or JPEG bytes."""
    if image_format not in PIL_FORMATS:
        raise ValueError(f"Unknown image format {image_format!r}. Valid formats: {', '.join(PIL_FORMATS)}.")
    pixels = np.clip(np.rint(face * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if image_format == "jpeg" else {}
    Image.fromarray(pixels).save(buffer, PIL_FORMATS[image_format], **options)
    return buffer.getvalue()
