"""A face as one flat record: the columns of csv, jsonl and parquet, and what the manifest hashes."""

from __future__ import annotations

from typing import Any

from annotator.exports.query import FaceRow
from annotator.models.specs import attribute_names


def csv_columns(attributes: list[str] | None = None, with_split: bool = False) -> list[str]:
    """Columns for these regressor attributes (default: the required ones), with ``split`` last when split."""
    names = attribute_names() if attributes is None else attributes
    return (["path", "sha256", "face_index", "face_method", "box", "male_prob", "female_prob", *names, "gender_version"]
            + [f"{name}_version" for name in names] + (["split"] if with_split else []))


def record(row: FaceRow, attributes: list[str], with_split: bool = False) -> dict[str, Any]:
    """The row's values under :func:`csv_columns` names; None where a value is missing."""
    values: dict[str, Any] = {"path": row.path, "sha256": row.sha256, "face_index": row.face_index,
                              "face_method": row.method, "box": list(row.box) if row.box is not None else None}
    for name in ("male_prob", "female_prob", *attributes):
        values[name] = row.values.get(name)
    for name in ("gender", *attributes):
        values[f"{name}_version"] = row.sources.get(name)
    if with_split:
        values["split"] = row.split
    return values
