"""What an export is asked for; no heavy imports, because the CLI reads the choices at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMATS = ("csv", "jsonl", "parquet", "tfrecord", "folders", "condition-data")
SOURCES = ("best", "predictions", "labels", "teachers")
"""best: labels win over predictions; predictions: labels ignored; labels: only faces labelled for every
exported attribute; teachers: the offline teachers' values (`annotate teach`), labels winning over them."""
IMAGE_FORMATS = ("png", "jpeg")
SPLIT_COLUMN_FORMATS = ("csv", "jsonl", "parquet")
"""Formats that mark a face's split in a ``split`` column; the others write one file or folder per split."""
IMAGE_EXPORT_FORMATS = ("tfrecord", "folders")
DUPLICATE_THRESHOLD = 24
"""Default largest perceptual-hash distance (bits of 256) of near-duplicates kept in one split; the same as
annotator.images.perceptual.DEFAULT_THRESHOLD (kept here so the CLI starts without numpy; a test checks)."""
GROUP_BY = ("image", "person")
"""What a split keeps together beyond near-duplicates: each image's faces, or also each person's."""
"""Formats that carry the aligned face itself, not only its values."""


@dataclass(frozen=True)
class ExportOptions:
    """Format, value source, attributes, split and filters of one export."""

    format: str = "csv"
    source: str = "best"
    attributes: tuple[str, ...] = ()  # empty: every attribute the format carries
    split: dict[str, float] | None = None  # split name -> fraction, in the order given
    seed: int = 0
    min_confidence: float = 0.0
    job_id: int | None = None
    image_format: str = "png"  # encoding of the faces in a tfrecord export
    duplicate_threshold: int = DUPLICATE_THRESHOLD  # with a split: near-duplicates within this many bits
    group_by: str = "image"  # with a split: "person" also keeps each person's faces together

    def to_dict(self) -> dict[str, Any]:
        """The options as recorded in the manifest."""
        return {"source": self.source, "attributes": list(self.attributes), "split": self.split,
                "seed": self.seed, "min_confidence": self.min_confidence, "job": self.job_id,
                "image_format": self.image_format, "duplicate_threshold": self.duplicate_threshold,
                "group_by": self.group_by}
