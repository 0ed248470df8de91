"""The csv export: one header line, then one line per face."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, TextIO

from annotator.exports.columns import csv_columns, record
from annotator.exports.query import FaceRow


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):  # the box: one cell, readable back with json.loads
        return json.dumps(value)
    return value


def write_csv(rows: Iterable[FaceRow], out: TextIO, attributes: list[str], with_split: bool = False) -> None:
    """One header line, then one line per face; a missing value or box is an empty cell."""
    columns = csv_columns(attributes, with_split)
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        values = record(row, attributes, with_split)
        writer.writerow([_csv_cell(values[column]) for column in columns])
