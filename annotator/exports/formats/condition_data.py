"""The seed project's ``condition_data.txt`` layout, for code that still reads it."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from annotator.exports.query import FaceRow

# The seed project's `condition_data.txt` columns; the ones we have no model for stay empty.
CONDITION_DATA_COLUMNS = ["", "image_path", "male_prob", "female_prob", "hair_color", "mouth", "eyes",
                          "background_mean", "background_std"]


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
