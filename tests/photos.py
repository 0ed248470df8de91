"""Ordinary photos for detection tests, made from scikit-image's astronaut (a real photo it ships)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ASTRONAUT_FACE = (150, 30, 300, 200)  # left, top, right, bottom of a crop around her face, hair and neck
EXIF_ORIENTATION = 0x0112


def astronaut() -> Image.Image:
    """The astronaut photo (512x512 RGB): one person, face about 85 pixels wide."""
    from skimage import data

    return Image.fromarray(data.astronaut())


def landscape(width: int = 640, height: int = 420, seed: int = 0) -> Image.Image:
    """A photo-like landscape with no person: sky gradient, two hill lines, grass texture and noise."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height)[:, None]
    sky = np.stack([0.45 + 0.3 * rows, 0.6 + 0.25 * rows, 0.95 - 0.1 * rows], axis=-1) * np.ones((1, width, 1))
    columns = np.arange(width)
    image = sky.copy()
    for base, amplitude, colour in ((0.45, 40, (0.25, 0.4, 0.2)), (0.62, 25, (0.2, 0.5, 0.15))):
        ridge = height * base + amplitude * np.sin(columns / rng.uniform(40, 90) + rng.uniform(0, 6))
        below = np.arange(height)[:, None] > ridge[None, :]
        image[below] = colour
    image += rng.normal(0, 0.05, image.shape)
    return Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))


def collage(scales: tuple[float, ...] = (1.0, 0.8, 1.3), tilts: tuple[float, ...] = (0.0, 20.0, -12.0)
            ) -> Image.Image:
    """Copies of the astronaut's face pasted side by side on a landscape, at these scales and tilts."""
    face = astronaut().crop(ASTRONAUT_FACE)
    tiles = [face.resize((round(face.width * s), round(face.height * s))).rotate(t, expand=True, fillcolor=(90, 110, 80))
             for s, t in zip(scales, tilts)]
    width = sum(tile.width for tile in tiles) + 60 * (len(tiles) + 1)
    height = max(tile.height for tile in tiles) + 120
    canvas = landscape(width, height, seed=3)
    left = 60
    for tile in tiles:
        canvas.paste(tile, (left, 60))
        left += tile.width + 60
    return canvas


def save_with_orientation(image: Image.Image, path: Path, orientation: int) -> None:
    """Save ``image`` as a JPEG whose stored pixels need EXIF ``orientation`` (6 or 8) to be shown upright."""
    stored = image.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    stored.save(path, "JPEG", quality=95, exif=exif)
