"""How a job finds faces: as already-aligned portraits, or by detecting and aligning them (no TensorFlow here)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

DETECTOR = "mtcnn"
DEFAULT_MIN_FACE_SIZE = 32
"""Smallest face (detector box side, source pixels) kept: below it the eyes are a few pixels tall."""
DEFAULT_MIN_SCORE = 0.9
"""Lowest detector confidence kept; MTCNN scores real faces above 0.99 and look-alikes lower."""


class FaceMode(str, enum.Enum):
    """Where the faces of an image come from."""

    DETECT = "detect"  # ordinary photos: detect every face, align each to the canonical layout
    ALIGNED = "aligned"  # the image already is one aligned portrait: resize it, no detector


@dataclass(frozen=True)
class FaceOptions:
    """A face mode with its detector settings; recorded with every job."""

    mode: FaceMode
    min_face_size: int = DEFAULT_MIN_FACE_SIZE
    min_score: float = DEFAULT_MIN_SCORE

    def __post_init__(self) -> None:
        if self.min_face_size < 12:
            raise ValueError(f"The minimum face size must be at least 12 pixels (the detector's smallest window). "
                             f"Received: min_face_size={self.min_face_size}.")
        if not 0.0 < self.min_score < 1.0:
            raise ValueError(f"The minimum face score must be between 0 and 1. Received: min_score={self.min_score}.")

    @property
    def method(self) -> str:
        """The ``faces.method`` of faces found this way: each detector setting keeps its own set of faces."""
        if self.mode is FaceMode.ALIGNED:
            return FaceMode.ALIGNED.value
        return f"{DETECTOR}-{self.min_face_size}-{self.min_score:.2f}"

    def to_record(self) -> dict[str, Any] | None:
        """The detector settings stored on the job (None for aligned portraits)."""
        if self.mode is FaceMode.ALIGNED:
            return None
        return {"detector": DETECTOR, "min_face_size": self.min_face_size, "min_score": self.min_score}

    @classmethod
    def from_record(cls, mode: str, record: dict[str, Any] | None) -> FaceOptions:
        """Rebuild the options a job was created with."""
        if FaceMode(mode) is FaceMode.ALIGNED or not record:
            return cls(FaceMode(mode))
        return cls(FaceMode(mode), int(record["min_face_size"]), float(record["min_score"]))

    @classmethod
    def from_method(cls, method: str) -> FaceOptions:
        """The options whose :attr:`method` is ``method`` (the inverse of :attr:`method`)."""
        if method == FaceMode.ALIGNED.value:
            return cls(FaceMode.ALIGNED)
        found = re.fullmatch(rf"{DETECTOR}-(\d+)-(\d\.\d\d)", method)
        if found is None:
            raise ValueError(f"Unknown face method {method!r}: expected 'aligned' or e.g. '{DETECTOR}-32-0.90'.")
        return cls(FaceMode.DETECT, int(found[1]), float(found[2]))


ALIGNED_FACES = FaceOptions(FaceMode.ALIGNED)
DETECTED_FACES = FaceOptions(FaceMode.DETECT)
