"""From an image file to its canonical 120x120 faces, by the job's face mode.

Faces leave here as uint8 RGB (a quarter of float32's memory and copies); the chain scales them to 0..1 inside
its compiled graph. :mod:`annotator.faces.pool` runs :func:`extract_image` for many images at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from annotator.faces.alignment import align_face_pixels
from annotator.faces.detection import Detection, detect_faces
from annotator.faces.modes import FaceMode, FaceOptions
from annotator.images.decoding import (
    FACE_SIZE,
    PHOTO_DRAFT_SIDE,
    DecodeError,
    DecodeFailure,
    decode_photo,
    face_pixels,
)
from annotator.images.perceptual import perceptual_hash


@dataclass(frozen=True)
class ExtractedFace:
    """One face ready for the chain: its place in the image (None for aligned portraits) and its pixels."""

    index: int
    detection: Detection | None
    pixels: np.ndarray  # (120, 120, 3) uint8 RGB


@dataclass(frozen=True)
class ImageToExtract:
    """A file of a job, the hash it was submitted with, and the faces already recorded for it (if any)."""

    path: str | Path  # a str may be a URI
    sha256: str | None = None
    known: Sequence[Detection] = ()


@dataclass(frozen=True)
class ExtractedImage:
    """The faces of one image and the perceptual hash of its picture, or why it has none."""

    faces: list[ExtractedFace]
    failure: DecodeFailure | None = None
    phash: str | None = None  # annotator.images.perceptual.perceptual_hash of the decoded picture


def decode_item(item: ImageToExtract, options: FaceOptions, *, max_pixels: int,
                data: bytes | None = None) -> Image.Image:
    """The picture of one image at the resolution its face mode needs (raises :class:`DecodeError`); ``data``
    are its bytes when they were already read."""
    # An aligned portrait is only resized to 120x120, so a JPEG may be decoded at a reduced scale down to that.
    draft_side = FACE_SIZE if options.mode is FaceMode.ALIGNED else PHOTO_DRAFT_SIDE
    return decode_photo(item.path, max_pixels=max_pixels, expected_sha256=item.sha256, draft_side=draft_side,
                        data=data)


def _faces(picture: Image.Image, item: ImageToExtract, options: FaceOptions) -> list[ExtractedFace]:
    if options.mode is FaceMode.ALIGNED:
        return [ExtractedFace(0, None, face_pixels(picture))]
    return faces_in_photo(picture, options, item.known)


def extract_faces(item: ImageToExtract, options: FaceOptions, *, max_pixels: int,
                  data: bytes | None = None) -> list[ExtractedFace]:
    """The faces of one image (raises :class:`DecodeError`); recorded detections are reused, not searched again.

    ``data`` are the image's bytes when they were already read (and checked against its hash)."""
    return _faces(decode_item(item, options, max_pixels=max_pixels, data=data), item, options)


def faces_in_photo(photo: Image.Image, options: FaceOptions, known: Sequence[Detection] = ()) -> list[ExtractedFace]:
    """The aligned faces of a decoded photo: the ``known`` detections, or what the detector finds."""
    detections = list(known) or detect_faces(photo, options)
    return [ExtractedFace(index, found, align_face_pixels(photo, found.landmarks)) for index, found in enumerate(detections)]


def extract_image(item: ImageToExtract, options: FaceOptions, max_pixels: int,
                  data: bytes | None = None) -> ExtractedImage:
    """The faces and perceptual hash of one image, or its reason code: never raises for a bad image."""
    try:
        picture = decode_item(item, options, max_pixels=max_pixels, data=data)
        return ExtractedImage(_faces(picture, item, options), phash=perceptual_hash(picture))
    except DecodeError as error:
        return ExtractedImage([], error.failure)
