"""Deterministic synthetic portraits in the canonical 120x120 layout, with known labels.

They exist so the whole service runs, trains and tests with no downloads. Each label is drawn independently
(uniform over 0, 0.5, 1; gender 50/50) and rendered where the real crops look: eyes inside rows 30:62 /
cols 30:90, mouth inside rows 60:120 / cols 30:90, background outside the face and hair. The gender cue is the
hair: long hair falling beside the face, or a short cap. Skin tone, hair colour, background hue, positions,
sizes and pixel noise vary so no single pixel gives a label away. Eyebrows are a second gender cue (thick or
thin), because long dark hair vanishes against a dark background.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from annotator.images.decoding import FACE_SIZE

LEVELS = np.array([0.0, 0.5, 1.0], dtype=np.float32)
_ROWS, _COLS = np.mgrid[0:FACE_SIZE, 0:FACE_SIZE].astype(np.float32)


@dataclass(frozen=True)
class Portraits:
    """Generated faces (n, 120, 120, 3) in 0..1 with their labels."""

    faces: np.ndarray
    gender: np.ndarray  # 0 male, 1 female
    eyes: np.ndarray
    mouth: np.ndarray
    background_mean: np.ndarray

    def labels(self, name: str) -> np.ndarray:
        """The labels of the attribute ``name``."""
        return getattr(self, name)


def _ellipse(cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((_ROWS - cy) / ry) ** 2 + ((_COLS - cx) / rx) ** 2 <= 1.0


def _draw_eye(image: np.ndarray, rng: np.random.Generator, cy: float, cx: float, openness: float) -> None:
    if openness == 0.0:  # closed: a lid line, no white and no iris
        image[(np.abs(_ROWS - cy) <= 0.8) & (np.abs(_COLS - cx) <= 7)] = rng.uniform(0.05, 0.2)
        return
    height = 2.2 if openness == 0.5 else 4.5
    white = _ellipse(cy, cx, height, 7.5)
    image[white] = rng.uniform(0.8, 0.95)
    iris = _ellipse(cy, cx + rng.uniform(-1.5, 1.5), min(height, 3.2), 3.2) & white
    image[iris] = rng.uniform(0.05, 0.25, 3)


def _draw_mouth(image: np.ndarray, rng: np.random.Generator, cy: float, cx: float, openness: float) -> None:
    lips = np.array([0.65, 0.25, 0.3]) * rng.uniform(0.7, 1.1)
    width = rng.uniform(10, 14)
    image[_ellipse(cy, cx, 2.0 + 7.0 * openness, width + 2)] = lips
    if openness > 0:
        image[_ellipse(cy, cx, 0.5 + 6.0 * openness, width - 1)] = rng.uniform(0.02, 0.12)
    else:
        image[(np.abs(_ROWS - cy) <= 0.7) & (np.abs(_COLS - cx) <= width)] = lips * 0.5


def _portrait(rng: np.random.Generator, female: bool, eyes: float, mouth: float, background: float) -> np.ndarray:
    brightness = {0.0: rng.uniform(0.03, 0.12), 0.5: rng.uniform(0.42, 0.58), 1.0: rng.uniform(0.85, 0.97)}[background]
    hue = 1.0 + rng.normal(0, 0.12, 3)
    image = np.empty((FACE_SIZE, FACE_SIZE, 3), np.float32)
    image[:] = np.clip(brightness * hue, 0, 1)
    cy, cx = 62 + rng.uniform(-3, 3), 60 + rng.uniform(-3, 3)
    ry, rx = rng.uniform(40, 45), rng.uniform(30, 35)
    hair = np.clip(rng.uniform(0.04, 0.16) * (1 + rng.normal(0, 0.1, 3)), 0, 1)
    if female:  # long hair: a wide mane behind the face down to the shoulders
        image[_ellipse(cy + 10, cx, ry + 18, rx + rng.uniform(10, 16)) & (_ROWS > cy - ry - 8)] = hair
    else:  # short hair: a cap on top of the head only
        image[_ellipse(cy - 6, cx, ry + 4, rx + 3) & (_ROWS < cy - 18)] = hair
    skin = rng.uniform(0.45, 0.9) * np.array([1.0, 0.8, 0.66]) * (1 + rng.normal(0, 0.04, 3))
    image[_ellipse(cy, cx, ry, rx)] = np.clip(skin, 0, 1)
    eye_row = cy - 16 + rng.uniform(-2, 2)
    brow = (np.abs(_ROWS - (eye_row - 8)) <= (0.6 if female else 1.8)) & (np.abs(np.abs(_COLS - cx) - 14) <= 8)
    image[brow] = hair
    _draw_eye(image, rng, eye_row, cx - 14, eyes)
    _draw_eye(image, rng, eye_row, cx + 14, eyes)
    _draw_mouth(image, rng, cy + 25 + rng.uniform(-2, 2), cx, mouth)
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    return np.clip(image, 0, 1)


def generate_portraits(n: int, seed: int = 0) -> Portraits:
    """``n`` portraits with independent labels; the same seed gives the same portraits."""
    rng = np.random.default_rng(seed)
    gender = rng.integers(0, 2, n)
    eyes, mouth, background = (LEVELS[rng.integers(0, 3, n)] for _ in range(3))
    faces = np.stack([_portrait(rng, bool(gender[i]), eyes[i], mouth[i], background[i]) for i in range(n)]) \
        if n else np.zeros((0, FACE_SIZE, FACE_SIZE, 3), np.float32)
    return Portraits(faces.astype(np.float32), gender, eyes, mouth, background)


def write_portrait_folder(folder: Path, n: int, seed: int = 0, fmt: str = "jpg") -> list[Path]:
    """Save ``n`` generated portraits as ``portrait_00000.jpg``... in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    portraits = generate_portraits(n, seed)
    paths = []
    for index, face in enumerate(portraits.faces):
        path = folder / f"portrait_{index:05d}.{fmt}"
        Image.fromarray((face * 255).round().astype(np.uint8)).save(path, quality=95)
        paths.append(path)
    return paths
