"""Find faces and their five landmarks in a photo with MTCNN (the ``mtcnn`` package ships its weights).

The detector is built once per process, on first use. MTCNN runs one image at a time (its batch mode shifts
boxes). Its image pyramid is only right for its default minimum face of 20 pixels (mtcnn 1.0 counts pyramid
levels without the minimum), so larger minimums are reached by shrinking the picture instead, which is also
what makes large photos cheap to search. The cascade around the networks is NumPy (:mod:`annotator.faces.cascade`);
the networks run on XNNPACK where the chain does (:mod:`annotator.faces.lite_detector`), without TensorFlow once
they are converted, and on TensorFlow elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from annotator.faces.cascade import Cascade
from annotator.faces.lite_detector import xnnpack_stages
from annotator.faces.modes import FaceOptions
from annotator.tf_runtime import import_tensorflow

DETECTION_MAX_SIDE = 1280
"""Longest side the detector searches; in bigger photos faces under 1/64 of the longer side are not found."""
_MTCNN_MIN_FACE = 20
# Detector rows: [image, x1, y1, x2, y2, score, five x then five y] for the eye on the image's left, the other
# eye, the nose, the mouth corner on the image's left, the other corner: the order of alignment.TEMPLATE.

_detector: Any = None
_detector_lock = threading.Lock()


@dataclass(frozen=True)
class Detection:
    """One face: box [left, top, right, bottom] and landmarks (5, 2) in source pixels, detector score."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float


# Input shapes of MTCNN's three networks: PNet is fully convolutional, RNet and ONet read fixed patches.
_STAGE_INPUTS = ((None, None, None, 3), (None, 24, 24, 3), (None, 48, 48, 3))


def _compiled(model: Any, index: int) -> Any:
    tf = import_tensorflow()

    @tf.function(input_signature=[tf.TensorSpec(_STAGE_INPUTS[index], tf.float32)], reduce_retracing=True)
    def call(x: Any) -> Any:
        return model(x, training=False)

    # Its concrete function skips tf.function's argument binding on every call: 11% less time a photo.
    return call.get_concrete_function()


class TensorFlowStage:
    """One network traced by TensorFlow, called as the cascade calls a network: arrays in, arrays out."""

    def __init__(self, function: Any) -> None:
        self._function = function

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        tf = import_tensorflow()
        return [output.numpy() for output in self._function(tf.constant(images, tf.float32))]


@cache
def _keras_models() -> Sequence[Any]:
    """PNet, RNet and ONet as the ``mtcnn`` package builds them, with its weights (imports TensorFlow)."""
    import_tensorflow()
    from mtcnn import MTCNN

    return [stage._model for stage in MTCNN().stages]


def _cascade() -> Cascade:
    global _detector
    with _detector_lock:
        if _detector is None:
            # The cascade's matrix products are small: more BLAS threads only spin (measured: twice the CPU time a
            # photo, no gain in wall time), and in the extraction pool every core already has its worker.
            threadpool_limits(1, user_api="blas")
            networks = xnnpack_stages(_keras_models, _compiled) or \
                [TensorFlowStage(_compiled(model, index)) for index, model in enumerate(_keras_models())]
            _detector = Cascade(*networks)
    return _detector


def search_scale(width: int, height: int, options: FaceOptions) -> float:
    """How much the picture is shrunk before the search (1.0: not at all)."""
    return min(1.0, _MTCNN_MIN_FACE / options.min_face_size, DETECTION_MAX_SIDE / max(width, height))


def detect_faces(image: Image.Image, options: FaceOptions) -> list[Detection]:
    """Faces of at least ``options.min_face_size`` pixels and ``options.min_score``, left to right."""
    scale = search_scale(image.width, image.height, options)
    searched = image
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        searched = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    pixels = np.asarray(searched.convert("RGB"))
    if min(pixels.shape[:2]) < 12:  # smaller than the detector's window: no face can be there
        return []
    detections = []
    for row in _cascade()(pixels, _MTCNN_MIN_FACE):
        left, top, right, bottom = (float(v) / scale for v in row[1:5])
        score = float(row[5])
        if score < options.min_score or min(right - left, bottom - top) < options.min_face_size:
            continue
        detections.append(Detection((left, top, right, bottom), row[6:16].reshape(2, 5).T / scale, score))
    return sorted(detections, key=lambda d: (d.box[0], d.box[1]))
