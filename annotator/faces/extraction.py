"""From an image file to its canonical 120x120 faces, by the job's face mode; done off the main thread.

Decoding and detection run in one background thread while the caller runs the model chain on the faces found
so far: on a CPU the two share the cores; on a GPU host the chain moves to the GPU and detection is all that is
left on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from annotator.faces.alignment import align_face
from annotator.faces.detection import Detection, detect_faces
from annotator.faces.modes import FaceMode, FaceOptions
from annotator.images.decoding import (
    FACE_SIZE,
    PHOTO_DRAFT_SIDE,
    DecodeError,
    DecodeFailure,
    decode_photo,
    face_array,
)
from annotator.images.perceptual import perceptual_hash


@dataclass(frozen=True)
class ExtractedFace:
    """One face ready for the chain: its place in the image (None for aligned portraits) and its pixels."""

    index: int
    detection: Detection | None
    pixels: np.ndarray  # (120, 120, 3) float32 RGB in 0..1


@dataclass(frozen=True)
class ImageToExtract:
    """A file of a job, the hash it was submitted with, and the faces already recorded for it (if any)."""

    path: Path
    sha256: str | None = None
    known: Sequence[Detection] = ()


@dataclass(frozen=True)
class ExtractedImage:
    """The faces of one image and the perceptual hash of its picture, or why it has none."""

    faces: list[ExtractedFace]
    failure: DecodeFailure | None = None
    phash: str | None = None  # annotator.images.perceptual.perceptual_hash of the decoded picture


def decode_item(item: ImageToExtract, options: FaceOptions, *, max_pixels: int) -> Image.Image:
    """The picture of one image at the resolution its face mode needs (raises :class:`DecodeError`)."""
    # An aligned portrait is only resized to 120x120, so a JPEG may be decoded at a reduced scale down to that.
    draft_side = FACE_SIZE if options.mode is FaceMode.ALIGNED else PHOTO_DRAFT_SIDE
    return decode_photo(item.path, max_pixels=max_pixels, expected_sha256=item.sha256, draft_side=draft_side)


def _faces(picture: Image.Image, item: ImageToExtract, options: FaceOptions) -> list[ExtractedFace]:
    if options.mode is FaceMode.ALIGNED:
        return [ExtractedFace(0, None, face_array(picture))]
    return faces_in_photo(picture, options, item.known)


def extract_faces(item: ImageToExtract, options: FaceOptions, *, max_pixels: int) -> list[ExtractedFace]:
    """The faces of one image (raises :class:`DecodeError`); recorded detections are reused, not searched again."""
    return _faces(decode_item(item, options, max_pixels=max_pixels), item, options)


def faces_in_photo(photo: Image.Image, options: FaceOptions, known: Sequence[Detection] = ()) -> list[ExtractedFace]:
    """The aligned faces of a decoded photo: the ``known`` detections, or what the detector finds."""
    detections = list(known) or detect_faces(photo, options)
    return [ExtractedFace(index, found, align_face(photo, found.landmarks)) for index, found in enumerate(detections)]


def _extract_or_fail(item: ImageToExtract, options: FaceOptions, max_pixels: int) -> ExtractedImage:
    try:
        picture = decode_item(item, options, max_pixels=max_pixels)
        return ExtractedImage(_faces(picture, item, options), phash=perceptual_hash(picture))
    except DecodeError as error:
        return ExtractedImage([], error.failure)


def extract_in_background(items: Sequence[ImageToExtract], options: FaceOptions, *,
                          max_pixels: int) -> Iterator[ExtractedImage]:
    """:func:`extract_faces` for every item, in order, computed ahead of the consumer in one thread."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annotate-faces")
    try:
        yield from pool.map(lambda item: _extract_or_fail(item, options, max_pixels), items)
    finally:  # a consumer that fails must not wait for the rest of the chunk to be detected
        pool.shutdown(wait=True, cancel_futures=True)
