"""Who is who: dlib's 128-d face descriptor of an aligned face, and groups of faces of one person.

Optional: needs the ``people`` extra (``dlib-bin`` and ``face_recognition_models``, whose ResNet descriptor
and 5-point landmark model are read from the package; nothing is downloaded). Two descriptors of one person
lie close (dlib's own same-person cut is 0.6 in Euclidean distance); faces are grouped by single linkage, so a
face joins a group when it is within the threshold of any member.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from annotator.errors import MissingExtraError

DESCRIPTOR_SIZE = 128
DEFAULT_PERSON_THRESHOLD = 0.4
"""Largest descriptor distance inside a person group. Measured on 600 UTKFace faces and a cropped or re-encoded
copy of 200 of them (aligned 120x120 faces): a 5% crop saved as JPEG sat at most 0.25 from its original, a 10%
crop at most 0.36, a quality-40 re-encode at most 0.16, so every copy joined its original; 14 of the 600
originals shared a group with another original, in groups of at most 5, 2 of them with a face of the other
gender (surely another person). At 0.5, 104 originals did (43 across genders) and one group held 88 faces; at
dlib's 0.6 one group held 992 of the 1,200: single linkage chains strangers at loose thresholds."""
SECONDS_PER_FACE = 0.17
"""Measured cost of one descriptor on this project's 2-core CPU (detector, landmarks, ResNet)."""
_FALLBACK_BOX = (8, 8, 115, 116)  # median box of dlib's detector on 200 UTKFace faces resized to 120x120
_PAIR_BLOCK = 1024


@lru_cache(maxsize=1)
def load_descriptor_models() -> tuple[Any, Any, Any]:
    """dlib's face detector, 5-point landmark model and descriptor ResNet (loaded once), or MissingExtraError."""
    try:
        import dlib
        import face_recognition_models
    except ImportError:
        raise MissingExtraError("Grouping by person needs dlib's face descriptor: pip install 'annotate[people]' "
                                "(dlib-bin and face_recognition_models).") from None
    detector = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    descriptor = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    return detector, landmarks, descriptor


def face_descriptors(faces: Any, on_face: Callable[[int], None] | None = None) -> np.ndarray:
    """(n, 128) descriptors of aligned faces ((120, 120, 3) floats in 0..1), given as an array or an iterable."""
    import dlib

    detector, landmarks, descriptor = load_descriptor_models()
    rows = []
    for number, face in enumerate(faces, start=1):
        pixels = np.ascontiguousarray(np.clip(np.rint(np.asarray(face) * 255.0), 0, 255).astype(np.uint8))
        found = detector(pixels, 1)
        box = found[0] if len(found) == 1 else dlib.rectangle(*_FALLBACK_BOX)
        rows.append(np.asarray(descriptor.compute_face_descriptor(pixels, landmarks(pixels, box)), np.float32))
        if on_face is not None:
            on_face(number)
    return np.stack(rows) if rows else np.zeros((0, DESCRIPTOR_SIZE), np.float32)


def person_groups(descriptors: np.ndarray, threshold: float = DEFAULT_PERSON_THRESHOLD) -> list[int]:
    """A group number per face: faces linked by chains of descriptors within ``threshold`` share one."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    vectors = np.asarray(descriptors, np.float32)
    n = len(vectors)
    squares = (vectors**2).sum(1)
    rows, cols = [], []
    for top in range(0, n, _PAIR_BLOCK):
        block = vectors[top : top + _PAIR_BLOCK]
        distance = squares[top : top + _PAIR_BLOCK, None] + squares[None, :] - 2.0 * block @ vectors.T
        i, j = np.nonzero(distance <= threshold**2)
        rows.append(i + top)
        cols.append(j)
    i, j = (np.concatenate(rows), np.concatenate(cols)) if rows else (np.zeros(0, int), np.zeros(0, int))
    _, labels = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(int(label), len(numbers)) for label in labels]
