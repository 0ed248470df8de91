"""Find faces and their five landmarks in a photo with MTCNN (the ``mtcnn`` package ships its weights).

The detector is built once per process, on first use, after TensorFlow is imported the quiet way. MTCNN runs
one image at a time (its batch mode shifts boxes). Its image pyramid is only right for its default minimum
face of 20 pixels (mtcnn 1.0 counts pyramid levels without the minimum), so larger minimums are reached by
shrinking the picture instead, which is also what makes large photos cheap to search. Its three networks run on
XNNPACK where the chain does (:mod:`annotator.faces.lite_detector`), on TensorFlow elsewhere.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

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


def _compiled(model: Any, shape: tuple[int | None, ...]) -> Any:
    tf = import_tensorflow()

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)], reduce_retracing=True)
    def call(x: Any) -> Any:
        return model(x, training=False)

    # Its concrete function skips tf.function's argument binding on every call: 11% less time a photo.
    return call.get_concrete_function()


def _mtcnn() -> Any:
    global _detector
    with _detector_lock:
        if _detector is None:
            import_tensorflow()
            from mtcnn import MTCNN

            detector = MTCNN()
            models = [stage._model for stage in detector.stages]
            # mtcnn calls its Keras networks eagerly, a dozen calls per photo; traced once they run about 3.5x
            # faster with identical outputs (measured on utkface-adults), and on XNNPACK faster still.
            compiled = xnnpack_stages(models, lambda model, index: _compiled(model, _STAGE_INPUTS[index])) or \
                [_compiled(model, shape) for model, shape in zip(models, _STAGE_INPUTS, strict=True)]
            for stage, runs in zip(detector.stages, compiled, strict=True):
                stage._model = runs
            _detector = detector
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
    # The array output keeps sub-pixel landmarks (the JSON output rounds them to whole pixels).
    rows = _mtcnn().detect_faces(pixels, min_face_size=_MTCNN_MIN_FACE, box_format="xyxy", output_type="numpy")
    detections = []
    for row in np.asarray(rows, np.float64).reshape(-1, 16):
        left, top, right, bottom = (float(v) / scale for v in row[1:5])
        score = float(row[5])
        if score < options.min_score or min(right - left, bottom - top) < options.min_face_size:
            continue
        detections.append(Detection((left, top, right, bottom), row[6:16].reshape(2, 5).T / scale, score))
    return sorted(detections, key=lambda d: (d.box[0], d.box[1]))
