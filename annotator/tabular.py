"""Text exports: csv, JSON lines, and the seed project's ``condition_data`` layout."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, TextIO

from annotator.export import FaceRow
from annotator.records import csv_columns, record

# The seed project's `condition_data.txt` columns; the ones we have no model for stay empty.
CONDITION_DATA_COLUMNS = ["", "image_path", "male_prob", "female_prob", "hair_color", "mouth", "eyes",
                          "background_mean", "background_std"]


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


def write_jsonl(rows: Iterable[FaceRow], out: TextIO, attributes: list[str], with_split: bool = False) -> None:
    """One JSON object per line with the csv columns as keys; a missing value or box is null."""
    out.writelines(json.dumps(record(row, attributes, with_split)) + "\n" for row in rows)


def write_condition_data(rows: Iterable[FaceRow], out: TextIO, attributes: list[str]) -> None:
    """The seed project's columns; attributes not exported (and those with no model here) stay empty."""
    writer = csv.writer(out)
    writer.writerow(CONDITION_DATA_COLUMNS)
    for row in rows:
        values = {name: value for name, value in row.values.items()
                  if name in ("male_prob", "female_prob") or name in attributes}
        # The seed wrote each row from a one-row DataFrame, so its index column is always 0.
        cells = {"": 0, "image_path": row.path, **values}
        writer.writerow([cells.get(column, "") for column in CONDITION_DATA_COLUMNS])
