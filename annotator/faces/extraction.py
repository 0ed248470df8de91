"""From an image file to its canonical 120x120 faces, by the job's face mode; done off the main thread.

Decoding and detection run in one background thread while the caller runs the model chain on the faces found
so far: on a CPU the two share the cores; on a GPU host the chain moves to the GPU and detection is all that is
left on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    read_checked,
)
from annotator.images.perceptual import perceptual_hash
from annotator.images.sources import is_uri

REMOTE_READ_AHEAD = 8
"""Objects of a store read at once ahead of decoding (each waits on the network; a few are in memory at a time)."""


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
        return [ExtractedFace(0, None, face_array(picture))]
    return faces_in_photo(picture, options, item.known)


def extract_faces(item: ImageToExtract, options: FaceOptions, *, max_pixels: int,
                  data: bytes | None = None) -> list[ExtractedFace]:
    """The faces of one image (raises :class:`DecodeError`); recorded detections are reused, not searched again.

    ``data`` are the image's bytes when they were already read (and checked against its hash)."""
    return _faces(decode_item(item, options, max_pixels=max_pixels, data=data), item, options)


def faces_in_photo(photo: Image.Image, options: FaceOptions, known: Sequence[Detection] = ()) -> list[ExtractedFace]:
    """The aligned faces of a decoded photo: the ``known`` detections, or what the detector finds."""
    detections = list(known) or detect_faces(photo, options)
    return [ExtractedFace(index, found, align_face(photo, found.landmarks)) for index, found in enumerate(detections)]


class _ReadAhead:
    """Reads the objects of a chunk from their store a few images ahead of their decoding, several at once, so
    the store's latency overlaps decoding; local files are left to the decoding thread, as before."""

    def __init__(self, items: Sequence[ImageToExtract], pool: ThreadPoolExecutor) -> None:
        self.items, self.pool = items, pool
        self.reads: dict[int, Future[bytes]] = {}
        self.next = 0

    def data(self, index: int) -> bytes | None:
        """The bytes of item ``index`` if it is an object (raises :class:`DecodeError`), else None."""
        while self.next < min(index + REMOTE_READ_AHEAD, len(self.items)):
            item = self.items[self.next]
            if is_uri(item.path):
                self.reads[self.next] = self.pool.submit(read_checked, item.path, item.sha256)
            self.next += 1
        read = self.reads.pop(index, None)
        return None if read is None else read.result()


def _extract_or_fail(index: int, item: ImageToExtract, options: FaceOptions, max_pixels: int,
                     ahead: _ReadAhead) -> ExtractedImage:
    try:
        picture = decode_item(item, options, max_pixels=max_pixels, data=ahead.data(index))
        return ExtractedImage(_faces(picture, item, options), phash=perceptual_hash(picture))
    except DecodeError as error:
        return ExtractedImage([], error.failure)


def extract_in_background(items: Sequence[ImageToExtract], options: FaceOptions, *,
                          max_pixels: int) -> Iterator[ExtractedImage]:
    """:func:`extract_faces` for every item, in order, computed ahead of the consumer in one thread (objects of
    a store are read ahead of it, :data:`REMOTE_READ_AHEAD` at a time)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annotate-faces")
    readers = ThreadPoolExecutor(max_workers=REMOTE_READ_AHEAD, thread_name_prefix="annotate-read")
    ahead = _ReadAhead(items, readers)
    try:
        yield from pool.map(lambda pair: _extract_or_fail(*pair, options, max_pixels, ahead), enumerate(items))
    finally:  # a consumer that fails must not wait for the rest of the chunk to be detected
        pool.shutdown(wait=True, cancel_futures=True)
        readers.shutdown(wait=True, cancel_futures=True)
