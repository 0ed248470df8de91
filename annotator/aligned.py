"""The aligned 120x120 face of each exported row, for the formats that carry images (tfrecord, folders)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from annotator.errors import ExportError
from annotator.export import FaceRow
from annotator.images import MAX_IMAGE_PIXELS, DecodeError, decode_face
from annotator.pipeline import ALIGNED

JPEG_QUALITY = 95
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}


def aligned_faces(rows: Sequence[FaceRow], *, max_pixels: int = MAX_IMAGE_PIXELS) -> Iterator[np.ndarray]:
    """Each row's aligned face, (120, 120, 3) float32 in 0..1, in row order.

    Only aligned portraits (the whole image is the face) are supported; faces of any other method need their
    detector's alignment, so they are refused up front, before an export writes anything.
    """
    others = sorted({row.method for row in rows if row.method != ALIGNED})
    if others:
        raise ExportError(f"Faces found by {', '.join(others)} cannot be exported as images yet: only aligned "
                          "portraits can. Export them as csv, jsonl or parquet instead.")
    return _decoded(rows, max_pixels)


def _decoded(rows: Sequence[FaceRow], max_pixels: int) -> Iterator[np.ndarray]:
    for row in rows:
        try:
            # The recorded SHA-256 makes sure the pixels are the ones the values were computed from.
            yield decode_face(Path(row.path), max_pixels=max_pixels, expected_sha256=row.sha256)
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
