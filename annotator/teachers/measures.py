"""What the landmark teachers measure, as pure NumPy: eye and mouth aspect ratios, background brightness, and
the written-down mappings of each onto the seed scale (1.0 open / bright, 0.5 half / mid-tone, 0.0 closed / dark).

Points are dlib's 68-point layout (iBUG 300-W): jaw 0-16, brows 17-26, eyes 36-41 and 42-47 (corner, two upper
lid points, corner, two lower lid points), outer lips 48-59, inner lips 60-67 (corners 60 and 64, middle of the
upper lip 62, of the lower lip 66).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
JAW = slice(0, 17)
BROWS = slice(17, 27)
INNER_LIP_TOP, INNER_LIP_BOTTOM, MOUTH_LEFT, MOUTH_RIGHT = 62, 66, 60, 64
CHIN = 8


def _mirror_order() -> np.ndarray:
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils; the bridge 27-30 and the tip 33 stay
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes: corners, lids
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips; 51 and 57 stay
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips; 62 and 66 stay
    order = np.arange(68)
    for left, right in pairs:
        order[left], order[right] = right, left
    return order


MIRROR_ORDER = _mirror_order()
"""Point ``i`` of a face is point ``MIRROR_ORDER[i]`` of the same face mirrored left to right."""


def unmirrored(points: np.ndarray, width: int) -> np.ndarray:
    """68 points fitted on a view mirrored left to right, in the view's own coordinates and point order."""
    back = np.array(points, np.float64)[MIRROR_ORDER]
    back[:, 0] = width - 1 - back[:, 0]
    return back


def median_measure(fits: np.ndarray, measure: Callable[[np.ndarray], float]) -> float:
    """The median of ``measure`` over several fits (k, 68, 2) of one face's points, NaN when none gives one."""
    values = np.array([measure(points) for points in fits])
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else float("nan")


@dataclass(frozen=True)
class Mapping:
    """A piecewise-linear map from a raw measure onto 0..1 through (raw, value) anchor points."""

    name: str
    raw: tuple[float, ...]
    value: tuple[float, ...]

    def __call__(self, measure: float) -> float:
        """The seed-scale value of ``measure``: linear between anchors, clamped at both ends."""
        return float(np.interp(measure, self.raw, self.value))

    def describe(self) -> str:
        """The anchors as text, e.g. ``EAR 0.10 -> 0, 0.18 -> 0.5, 0.25 -> 1``."""
        return f"{self.name} " + ", ".join(f"{r:.2f} -> {v:g}" for r, v in zip(self.raw, self.value))


# Anchors chosen by looking at 300 UTKFace adults sorted by the measure (README, "Teachers"): an eye aspect
# ratio under 0.10 is a shut eye, 0.16-0.20 the squint of a broad smile, from 0.24 a plainly open eye (the
# literature puts closed eyes below about 0.2); the top anchor sits at 0.28 rather than 0.24 so that not most
# faces are exactly 1.0, which drives a sigmoid regressor into saturation (it collapsed so in a trial). A mouth
# aspect ratio under 0.04 is closed lips, 0.10-0.25 a smile with the teeth showing, from 0.40 a yawn or a shout.
EYES_MAPPING = Mapping("EAR", (0.10, 0.18, 0.28), (0.0, 0.5, 1.0))
MOUTH_MAPPING = Mapping("MAR", (0.04, 0.16, 0.40), (0.0, 0.5, 1.0))


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(*(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """(|p2-p6| + |p3-p5|) / (2 |p1-p4|) of one eye's six points (Soukupova and Cech, 2016)."""
    width = _distance(eye[0], eye[3])
    if width == 0:
        return float("nan")
    return (_distance(eye[1], eye[5]) + _distance(eye[2], eye[4])) / (2.0 * width)


def eyes_ratio(points: np.ndarray) -> float:
    """The mean eye aspect ratio of both eyes of 68 points."""
    return (eye_aspect_ratio(points[LEFT_EYE]) + eye_aspect_ratio(points[RIGHT_EYE])) / 2.0


def mouth_ratio(points: np.ndarray) -> float:
    """The gap between the inner lips over the width between the mouth's corners, of 68 points."""
    width = _distance(points[MOUTH_LEFT], points[MOUTH_RIGHT])
    if width == 0:
        return float("nan")
    return _distance(points[INNER_LIP_TOP], points[INNER_LIP_BOTTOM]) / width


def luminance(pixels: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of RGB pixels in 0..1."""
    return pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114


MIN_BACKGROUND_SHARE = 0.005
"""Fewer background pixels than this share of the view: the face fills the picture, no background value."""
MIN_HAIR_PIXELS = 20
HAIR_RING = 1.3
"""The hair lies up to this many face radii from the face's centre, the background beyond."""


@dataclass(frozen=True)
class Background:
    """The median luma of the background and of the hair, and the seed-scale value they give."""

    background: float
    hair: float
    value: float


def head_regions(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(background, hair) masks of a view of ``shape`` from its 68 points.

    The face is an ellipse from the chin to 0.6 eye distances above the brows, as wide as the jaw. The hair is
    the ring between it and the same ellipse 1.3 times larger, above the eyes; the background is what lies
    outside the larger ellipse and above the lower lip (lower down are the neck and clothes).
    """
    height, width = shape
    eye_distance = _distance(points[LEFT_EYE].mean(axis=0), points[RIGHT_EYE].mean(axis=0))
    eye_level = float(np.concatenate([points[LEFT_EYE], points[RIGHT_EYE]])[:, 1].mean())
    top = float(points[BROWS, 1].min()) - 0.6 * eye_distance
    chin = float(points[CHIN, 1])
    jaw = points[JAW]
    centre_x, centre_y = float(jaw[:, 0].mean()), (chin + top) / 2.0
    semi_x = max(float(jaw[:, 0].max() - jaw[:, 0].min()) / 2.0, 1.0)
    semi_y = max((chin - top) / 2.0, 1.0)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    radius = np.sqrt(((cols - centre_x) / semi_x) ** 2 + ((rows - centre_y) / semi_y) ** 2)  # 1 on the face's edge
    hair = (radius > 1.0) & (radius <= HAIR_RING) & (rows < eye_level)
    background = (radius > HAIR_RING) & (rows < float(points[INNER_LIP_BOTTOM, 1]))
    return background, hair


def background_brightness(view: np.ndarray, valid: np.ndarray, points: np.ndarray) -> Background | None:
    """The seed's background_mean of a face view (H, W, 3) in 0..1, or None when too little background shows.

    1.0 bright, 0.5 mid-tone, 0.0 as dark as the hair or darker: (background - hair) / (1 - hair) on the
    median luma of each, clamped to 0..1. ``valid`` marks the view's pixels that come from the photo (a face
    near the photo's edge leaves filled pixels that are neither background nor hair).
    """
    background, hair = head_regions(points, view.shape[:2])
    background &= valid
    hair &= valid
    if background.sum() < MIN_BACKGROUND_SHARE * valid.size or hair.sum() < MIN_HAIR_PIXELS:
        return None
    luma = luminance(view)
    back, dark = float(np.median(luma[background])), float(np.median(luma[hair]))
    value = float(np.clip((back - dark) / max(1.0 - dark, 0.05), 0.0, 1.0))
    return Background(back, dark, value)
