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
from annotator.images.decoding import DecodeError, DecodeFailure, decode_face, decode_photo


@dataclass(frozen=True)
class ExtractedFace:
    """One face ready for the chain: its place in the image (None for aligned portraits) and its pixels."""

    index: int
    detection: Detection | None
    pixels: np.ndarray  # (120, 120, 3) float32 RGB in 0..1


@dataclass(frozen=True)
class ImageToExtract:
    """A file of a job, the hash it was submitted with, and the faces already recorded for it (if any)."""

    path: str | Path  # a str may be a URI
    sha256: str | None = None
    known: Sequence[Detection] = ()


@dataclass(frozen=True)
class ExtractedImage:
    """The faces of one image, or why it has none."""

    faces: list[ExtractedFace]
    failure: DecodeFailure | None = None


def extract_faces(item: ImageToExtract, options: FaceOptions, *, max_pixels: int) -> list[ExtractedFace]:
    """The faces of one image (raises :class:`DecodeError`); recorded detections are reused, not searched again."""
    if options.mode is FaceMode.ALIGNED:
        pixels = decode_face(item.path, max_pixels=max_pixels, expected_sha256=item.sha256)
        return [ExtractedFace(0, None, pixels)]
    photo = decode_photo(item.path, max_pixels=max_pixels, expected_sha256=item.sha256)
    return faces_in_photo(photo, options, item.known)


def faces_in_photo(photo: Image.Image, options: FaceOptions, known: Sequence[Detection] = ()) -> list[ExtractedFace]:
    """The aligned faces of a decoded photo: the ``known`` detections, or what the detector finds."""
    detections = list(known) or detect_faces(photo, options)
    return [ExtractedFace(index, found, align_face(photo, found.landmarks)) for index, found in enumerate(detections)]


def _extract_or_fail(item: ImageToExtract, options: FaceOptions, max_pixels: int) -> ExtractedImage:
    try:
        return ExtractedImage(extract_faces(item, options, max_pixels=max_pixels))
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
