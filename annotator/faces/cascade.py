"""MTCNN's cascade (Zhang et al., 2016) in NumPy around its three networks, step for step as ``mtcnn`` 1.0 runs it.

The package drives its networks with TensorFlow operations in between (each pyramid level resized, patches cut,
arrays turned into tensors and back): with the networks on XNNPACK that glue cost more than the networks, and it
made every extraction process import TensorFlow. Here the same steps are NumPy with the package's defaults and its
conventions, down to its area resize, its patch sampling and its suppression rule, so the faces are the ones the
package finds (``tests/faces/test_cascade.py`` compares them on real photos) and networks run by XNNPACK need no
TensorFlow at all.

A network is any callable from a float32 batch (N, H, W, 3) to its outputs as NumPy arrays, in the order of the
package's Keras models: PNet (box offsets, face probabilities) on each pyramid level, RNet (offsets,
probabilities) on 24x24 patches, ONet (offsets, landmarks, probabilities) on 48x48 patches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

Network = Callable[[np.ndarray], Sequence[np.ndarray]]

WINDOW = 12  # PNet's input window (pixels of a pyramid level) and its stride's cell
STRIDE = 2
PYRAMID_FACTOR = 0.709
PNET_THRESHOLD, RNET_THRESHOLD, ONET_THRESHOLD = 0.6, 0.7, 0.8
LEVEL_OVERLAP, PROPOSAL_OVERLAP, FACE_OVERLAP = 0.5, 0.7, 0.7  # the package's suppression thresholds
# Rows: [image, x1, y1, x2, y2, score, then five x and five y landmarks]; the image column is always 0 here.
_BOX, _SCORE = slice(1, 5), 5


def normalized(pixels: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) as the networks read it: (value - 127.5) / 128, exact in float32."""
    return (pixels.astype(np.float32) - np.float32(127.5)) / np.float32(128)


def pyramid_scales(height: int, width: int, min_face_size: int) -> np.ndarray:
    """The scales PNet searches a picture at (the package's count of levels, from its smaller side)."""
    levels = round(-(np.log(min(width, height) / WINDOW) / np.log(PYRAMID_FACTOR) + 1))
    return WINDOW / min_face_size * PYRAMID_FACTOR ** np.arange(max(levels, 0))


@lru_cache(maxsize=256)
def _area_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in): how much of each source pixel falls in each output pixel, over the output's width."""
    scale = size_in / size_out
    starts = np.arange(size_out)[:, None] * scale
    pixels = np.arange(size_in)[None, :]
    overlap = np.minimum(starts + scale, pixels + 1) - np.maximum(starts, pixels)
    return (np.clip(overlap, 0, None) / scale).astype(np.float32)


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (H, W, C) resized by area averaging, as TensorFlow's ``resize_area``: each output pixel is the
    mean of the source pixels it covers, weighted by how much of each it covers."""
    source_height, source_width, channels = image.shape
    down = _area_weights(source_height, height) @ image.reshape(source_height, -1)  # (height, W * C)
    by_column = down.reshape(height, source_width, channels).transpose(1, 0, 2).reshape(source_width, -1)
    across = _area_weights(source_width, width) @ by_column  # (width, height * C)
    return across.reshape(width, height, channels).transpose(1, 0, 2)


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size, C) patches of ``image`` (H, W, C) by bilinear sampling, as TensorFlow's ``crop_and_resize``
    with the boxes [x1, y1, x2, y2] in pixels divided by the image's size (the package's convention): samples
    beyond the image are 0."""
    height, width = image.shape[:2]
    corners = boxes.astype(np.float32) / np.array([width, height, width, height], np.float32)
    steps = np.arange(size, dtype=np.float32)

    def samples(start: np.ndarray, end: np.ndarray, extent: int) -> tuple[np.ndarray, ...]:
        last = np.float32(extent - 1)
        at = start[:, None] * last + steps[None, :] * ((end - start) * last / np.float32(size - 1))[:, None]
        low = np.floor(at)
        inside = (at >= 0) & (at <= last)
        return (np.clip(low, 0, last).astype(np.intp), np.clip(np.ceil(at), 0, last).astype(np.intp),
                (at - low).astype(np.float32), inside)

    top, bottom, y_lerp, rows_inside = samples(corners[:, 1], corners[:, 3], height)
    left, right, x_lerp, columns_inside = samples(corners[:, 0], corners[:, 2], width)
    pixels = image.reshape(height * width, -1)

    def at(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        return pixels[rows[:, :, None] * width + columns[:, None, :]]

    x_lerp = x_lerp[:, None, :, None]
    upper = at(top, left)
    upper = upper + (at(top, right) - upper) * x_lerp
    lower = at(bottom, left)
    lower = lower + (at(bottom, right) - lower) * x_lerp
    patches = upper + (lower - upper) * y_lerp[:, :, None, None]
    inside = rows_inside[:, :, None] & columns_inside[:, None, :]
    return np.where(inside[..., None], patches, np.float32(0))


def _by_score(rows: np.ndarray) -> np.ndarray:
    return rows[np.argsort(rows[:, _SCORE])[::-1]]


def suppressed(rows: np.ndarray, threshold: float, *, by_smaller: bool = False) -> np.ndarray:
    """``rows`` (best first) without those that overlap any better row, kept or not, by more than ``threshold``
    (the package's rule, not greedy suppression): overlap over union, or over the smaller box's area."""
    x1, y1, x2, y2 = (rows[:, column] for column in range(1, 5))
    areas = (x2 - x1) * (y2 - y1)
    width = np.maximum(0, np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]))
    height = np.maximum(0, np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]))
    shared = width * height
    whole = np.minimum(areas[:, None], areas[None, :]) if by_smaller else areas[:, None] + areas[None, :] - shared
    with np.errstate(divide="ignore", invalid="ignore"):  # empty boxes give NaN, which suppresses nothing
        overlaps = np.triu(shared / whole > threshold, k=1)
    return rows[~overlaps.any(axis=0)]


def squared(rows: np.ndarray) -> np.ndarray:
    """Each box grown to a square on its longer side, about the same centre."""
    rows = rows.copy()
    width, height = rows[:, 3] - rows[:, 1], rows[:, 4] - rows[:, 2]
    side = np.maximum(width, height)
    rows[:, 1] += width * 0.5 - side * 0.5
    rows[:, 2] += height * 0.5 - side * 0.5
    rows[:, 3], rows[:, 4] = rows[:, 1] + side, rows[:, 2] + side
    return rows


def _moved(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by a network's offsets, in units of the box's size (counted inclusively, as the package does)."""
    rows = rows.copy()
    width, height = rows[:, 3] - rows[:, 1] + 1, rows[:, 4] - rows[:, 2] + 1
    rows[:, _BOX] += offsets * np.stack([width, height, width, height], axis=-1)
    return rows


def _level_proposals(offsets: np.ndarray, probabilities: np.ndarray, scale: float) -> np.ndarray:
    """PNet's windows on one pyramid level that look like a face, moved by its offsets, in the picture's pixels."""
    score = probabilities[0, :, :, 1]
    ys, xs = np.where(score > PNET_THRESHOLD)
    dx1, dy1, dx2, dy2 = offsets[0, ys, xs].T
    left, top = xs * STRIDE + 1, ys * STRIDE + 1  # the window's pixels counted from 1, its far edge included
    right, bottom = xs * STRIDE + WINDOW, ys * STRIDE + WINDOW
    side = WINDOW - 1
    rows = np.stack([np.zeros(len(xs)), left + dx1 * side, top + dy1 * side, right + dx2 * side,
                     bottom + dy2 * side, score[ys, xs]], axis=1)
    rows = _by_score(rows)
    rows[:, _BOX] /= scale
    return suppressed(rows, LEVEL_OVERLAP)


class Cascade:
    """MTCNN's three stages over networks run by any engine."""

    def __init__(self, pnet: Network, rnet: Network, onet: Network) -> None:
        self.pnet, self.rnet, self.onet = pnet, rnet, onet

    def __call__(self, pixels: np.ndarray, min_face_size: int) -> np.ndarray:
        """Faces in uint8 RGB ``pixels`` (H, W, 3) as rows [0, x1, y1, x2, y2, score, five x, five y], best
        first, boxes held inside the picture."""
        image = normalized(pixels)
        rows = self._proposals(image, min_face_size)
        if len(rows):
            rows = self._refined(image, rows)
        if len(rows):
            rows = self._faces(image, rows)
        if not len(rows):
            return np.empty((0, 16))
        height, width = pixels.shape[:2]
        rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, width - 1)
        rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, height - 1)
        return rows

    def _proposals(self, image: np.ndarray, min_face_size: int) -> np.ndarray:
        levels = []
        for scale in pyramid_scales(image.shape[0], image.shape[1], min_face_size):
            height, width = (np.asarray(image.shape[:2]) * scale).astype(int)
            offsets, probabilities = self.pnet(area_resize(image, height, width)[None])[:2]
            levels.append(_level_proposals(offsets, probabilities, scale))
        if not levels:
            return np.empty((0, 6))
        return squared(suppressed(_by_score(np.concatenate(levels)), PROPOSAL_OVERLAP))

    def _refined(self, image: np.ndarray, rows: np.ndarray) -> np.ndarray:
        offsets, probabilities = self.rnet(crop_and_resize(image, rows[:, _BOX], 24))[:2]
        rows = rows.copy()
        rows[:, _SCORE] = probabilities[:, -1]
        rows = _moved(rows, offsets)
        rows = rows[rows[:, _SCORE] > RNET_THRESHOLD]
        return squared(suppressed(_by_score(rows), PROPOSAL_OVERLAP))

    def _faces(self, image: np.ndarray, rows: np.ndarray) -> np.ndarray:
        offsets, landmarks, probabilities = self.onet(crop_and_resize(image, rows[:, _BOX], 48))[:3]
        width, height = rows[:, 3:4] - rows[:, 1:2] + 1, rows[:, 4:5] - rows[:, 2:3] + 1
        landmarks = np.concatenate([width * landmarks[:, :5] + rows[:, 1:2] - 1,
                                    height * landmarks[:, 5:] + rows[:, 2:3] - 1], axis=1)
        rows = rows.copy()
        rows[:, _SCORE] = probabilities[:, -1]
        rows = np.concatenate([_moved(rows, offsets), landmarks], axis=1)
        rows = rows[rows[:, _SCORE] > ONET_THRESHOLD]
        return suppressed(_by_score(rows), FACE_OVERLAP, by_smaller=True)
