"""`annotate train --group-by person`: group a data set's faces by person, so no person straddles a split."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from annotator.errors import TrainingDataError
from annotator.faces.embedding import (
    SECONDS_PER_FACE,
    face_descriptors,
    load_descriptor_models,
    person_groups,
)
from annotator.images.decoding import decode_face
from annotator.training.datasets import TrainingSet


def with_person_groups(data: TrainingSet, *, crop_level: bool, echo: Callable[[str], None]) -> TrainingSet:
    """``data`` with one group per person: faces whose dlib descriptors chain within the default threshold."""
    if crop_level:
        raise TrainingDataError("--group-by person needs whole aligned faces to tell people apart; --crop-level "
                                "images are crops of a face. Use --group-column with person ids instead.")
    if data.groups is not None:
        raise TrainingDataError("--group-by person and --group-column both set the groups; choose one.")
    load_descriptor_models()  # a missing extra fails before any face is read
    echo(f"  describing {len(data.paths)} faces to group them by person (about "
         f"{len(data.paths) * SECONDS_PER_FACE / 60:.0f} min on 2 CPU cores)")
    # The images decoded once already; faces are decoded again one at a time so memory holds descriptors only.
    descriptors = face_descriptors(decode_face(path) for path in data.paths)
    groups = np.asarray([f"person-{number}" for number in person_groups(descriptors)])
    return dataclasses.replace(data, groups=groups)
