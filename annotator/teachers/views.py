"""The face view the teachers read: the canonical layout at :data:`VIEW_SIZE` pixels, as uint8 RGB.

A detected face is warped from the photo with its five landmarks, exactly as the chain's 120x120 face is but at
twice the size, so the teachers see the same face in more detail; an aligned portrait is resized like the chain
resizes it. ``valid`` marks the view's pixels that come from the photo: the warp fills the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from annotator.faces.alignment import align_face
from annotator.teachers.models import VIEW_SIZE


@dataclass(frozen=True)
class FaceView:
    """A face as the teachers see it."""

    pixels: np.ndarray  # (VIEW_SIZE, VIEW_SIZE, 3) uint8 RGB
    valid: np.ndarray  # (VIEW_SIZE, VIEW_SIZE) bool: the pixel comes from the photo


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8))


def detected_view(photo: Image.Image, landmarks: np.ndarray) -> FaceView:
    """The view of the face with these five landmarks (source pixels) in ``photo``."""
    pixels = align_face(photo, landmarks, size=VIEW_SIZE)
    inside = align_face(Image.new("L", photo.size, 255), landmarks, size=VIEW_SIZE)[..., 0] > 0.5
    return FaceView(_to_uint8(pixels), inside)


def aligned_view(face: np.ndarray) -> FaceView:
    """The view of an aligned portrait already decoded at VIEW_SIZE (float RGB in 0..1): every pixel is valid."""
    if face.shape[:2] != (VIEW_SIZE, VIEW_SIZE):
        raise ValueError(f"An aligned view is {VIEW_SIZE}x{VIEW_SIZE}. Received: {face.shape}.")
    return FaceView(_to_uint8(face), np.ones((VIEW_SIZE, VIEW_SIZE), bool))
