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

    def to_dict(self) -> dict[str, Any]:
        """The options as recorded in the manifest."""
        return {"source": self.source, "attributes": list(self.attributes), "split": self.split,
                "seed": self.seed, "min_confidence": self.min_confidence, "job": self.job_id,
                "image_format": self.image_format}
