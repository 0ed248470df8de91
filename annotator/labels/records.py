"""One row of a labels file as read, before it is matched to a face, and what a label value may be."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from annotator.errors import LabelRowError
from annotator.models.specs import REGISTRY, OutputKind

KEY_FIELDS = ("sha256", "path", "face_index", "method")
"""Fields that say which face a row is about (CSV columns, or keys of a Label Studio task's ``data``)."""

GENDER_WORDS = {"male": 0.0, "female": 1.0}
"""A gender label is the female probability: ``male`` is 0, ``female`` is 1."""


@dataclass(frozen=True)
class LabelRecord:
    """A row of a labels file: where it is, which face it names, its raw values, or why it cannot be read."""

    where: str  # "line 7" or "task 3", for the report
    keys: dict[str, str] = field(default_factory=dict)
    values: dict[str, object] = field(default_factory=dict)  # attribute -> raw cell or Label Studio value
    problem: str | None = None


def parse_value(attribute: str, raw: object) -> float:
    """A label value in 0..1 from a cell: a number, or for gender also ``male`` / ``female``."""
    spec = REGISTRY.get(attribute)
    if spec is None:
        known = ", ".join(REGISTRY)
        raise LabelRowError(f"unknown attribute {attribute!r} (known: {known})")
    text = str(raw).strip().lower()
    if spec.output is OutputKind.GENDER_SOFTMAX and text in GENDER_WORDS:
        return GENDER_WORDS[text]
    try:
        value = float(text)
    except ValueError:
        expected = "male, female or a number in [0, 1]" if spec.output is OutputKind.GENDER_SOFTMAX else \
            "a number in [0, 1]"
        raise LabelRowError(f"{attribute} must be {expected}. Received: {raw!r}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise LabelRowError(f"{attribute} must be in [0, 1]. Received: {raw!r}")
    return value
