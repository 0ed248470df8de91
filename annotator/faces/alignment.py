"""Warp a face onto the canonical 120x120 layout from its five landmarks (NumPy + Pillow only).

The template puts the landmarks where the seed crops look (``MODELS.md``): eyes crop rows 30:62 / cols
30:90, mouth crop rows 60:120 / cols 30:90. Its proportions are the mean MTCNN landmarks of real aligned faces
(UTKFace: mouth 1.02 eye-distances below the eyes, nose 0.61, mouth 0.93 eye-distances wide), scaled to an eye
distance of 32 pixels and centred:

- eyes at row 45, columns 44 and 76: an eye is about half an eye-distance wide (16 px), so each spans about
  36..52 and 68..84: 6 px inside the crop's sides, 11 px below its top and 13 px above its bottom.
- mouth corners at row 78, columns 45 and 75: a closed mouth spans about rows 73..83, a wide open one down to
  about 100; 13 px below the crop's top edge and 15 px inside its sides.
- the face (brows to chin, about rows 30..95) fills the middle of the image and leaves background on every
  side, which the background_mean model looks at.

A least-squares similarity transform (rotation, one scale, translation) maps the five detected points onto the
template, so a tilted head comes out level and the face's own proportions are kept.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from annotator.images.decoding import unit_floats
from annotator.models.specs import FACE_SIZE

TEMPLATE = np.array([
    [44.0, 45.0],  # eye on the image's left
    [76.0, 45.0],  # eye on the image's right
    [60.0, 64.5],  # nose tip
    [45.0, 78.0],  # mouth corner on the image's left
    [75.0, 78.0],  # mouth corner on the image's right
], dtype=np.float64)
"""Landmarks (x, y) of the canonical face, in the order the detector reports them."""

_MAX_SHRINK = 2.0  # bilinear sampling skips pixels beyond this shrink; larger faces are reduced first


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the similarity transform that best maps ``source`` points onto ``target`` (Umeyama)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 2:
        raise ValueError(f"Need two matching (n, 2) point sets, n >= 2. Received: {source.shape=}, {target.shape=}.")
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    variance = (centred_source ** 2).sum() / len(source)
    if variance == 0:
        raise ValueError("The landmarks are all the same point; no transform fits them.")
    covariance = centred_target.T @ centred_source / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # a reflection fits better: forbid it, faces are never mirrored
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / variance
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (n, 2) mapped through a 2x3 affine ``matrix``."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(image: Image.Image, landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """The face with these five landmarks, warped to the canonical layout: (size, size, 3) float32 in 0..1."""
    return unit_floats(align_face_pixels(image, landmarks, size))


def align_face_pixels(image: Image.Image, landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """:func:`align_face` as it leaves the warp: (size, size, 3) uint8 RGB, a quarter of float32's memory."""
    landmarks = np.asarray(landmarks, np.float64)
    template = TEMPLATE * (size / FACE_SIZE)
    matrix = similarity_transform(landmarks, template)
    shrink = 1.0 / np.hypot(*matrix[:, 0])  # source pixels per output pixel
    if shrink > _MAX_SHRINK:  # reduce big faces first so every source pixel still counts (no aliasing)
        factor = int(shrink // _MAX_SHRINK)
        image = image.reduce(factor)
        landmarks = landmarks / factor
        matrix = similarity_transform(landmarks, template)
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    warped = image.convert("RGB").transform((size, size), Image.Transform.AFFINE, data=tuple(inverse.ravel()),
                                            resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(warped, dtype=np.uint8)
