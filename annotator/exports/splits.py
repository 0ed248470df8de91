"""Train/val/test splits: stratified by gender, each group of images (one image, its near-duplicates, one person)
in one split, reproducible by seed."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from annotator.errors import ExportError

if TYPE_CHECKING:
    from annotator.exports.query import FaceRow

# Split names become file and folder names, so they stay plain.
SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
SUM_TOLERANCE = 1e-6


def parse_split(text: str) -> dict[str, float]:
    """``"train=0.8,val=0.1,test=0.1"`` as ``{"train": 0.8, ...}``, or :class:`ExportError` saying what is wrong."""
    fractions: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        name, equals, raw = part.partition("=")
        name = name.strip()
        if not equals or not SPLIT_NAME.match(name):
            raise ExportError(f"Each split is NAME=FRACTION with a plain name, e.g. train=0.8,val=0.1,test=0.1. "
                              f"Received: {text!r}.")
        if name in fractions:
            raise ExportError(f"Split {name!r} is named twice. Received: {text!r}.")
        try:
            fraction = float(raw)
        except ValueError:
            raise ExportError(f"The fraction of split {name!r} is not a number. Received: {text!r}.") from None
        if not 0.0 <= fraction <= 1.0:
            raise ExportError(f"The fraction of split {name!r} must be between 0 and 1. Received: {text!r}.")
        fractions[name] = fraction
    total = sum(fractions.values())
    if not math.isclose(total, 1.0, abs_tol=SUM_TOLERANCE):
        raise ExportError(f"Split fractions must sum to 1; they sum to {total:g}. Received: {text!r}.")
    return fractions


def _rank(seed: int, sha256: str) -> str:
    # A keyed hash orders images the same way for a seed on every machine and Python version.
    return hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()


def _stratum(classes: list[str | None]) -> str:
    # An image's faces may disagree; the most common class decides, ties broken by name for determinism.
    counts = Counter("unknown" if c is None else c for c in classes)
    return min(counts, key=lambda name: (-counts[name], name))


def assign_splits(rows: Sequence[FaceRow], fractions: dict[str, float], seed: int,
                  class_of: Callable[[FaceRow], str | None], group_of: Mapping[str, str] | None = None) -> None:
    """Set ``row.split`` on every row: groups are shuffled by ``seed`` within each class, then cut by fraction.

    ``group_of`` maps an image's SHA-256 to its group's key (see :mod:`annotator.exports.grouping`): all faces
    of the images of one group land in one split. Without it, or for an image it does not name, each image is
    its own group, keyed by its SHA-256, so an image with no near-duplicate lands where it always did.
    """
    groups: dict[str, list[FaceRow]] = defaultdict(list)
    for row in rows:
        groups[row.sha256 if group_of is None else group_of.get(row.sha256, row.sha256)].append(row)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, faces in groups.items():
        strata[_stratum([class_of(face) for face in faces])].append(key)
    names = list(fractions)
    for keys in strata.values():
        keys.sort(key=lambda key: _rank(seed, key))
        cumulative, start = 0.0, 0
        for position, name in enumerate(names):
            cumulative += fractions[name]
            # The last split takes the remainder so rounding never drops a group.
            end = len(keys) if position == len(names) - 1 else round(cumulative * len(keys))
            for key in keys[start:end]:
                for face in groups[key]:
                    face.split = name
            start = end
