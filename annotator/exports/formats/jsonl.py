"""The JSON lines export: one object per face, keyed by the csv columns."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TextIO

from annotator.exports.columns import record
from annotator.exports.query import FaceRow


def write_jsonl(rows: Iterable[FaceRow], out: TextIO, attributes: list[str], with_split: bool = False) -> None:
    """One JSON object per line with the csv columns as keys; a missing value or box is null."""
    out.writelines(json.dumps(record(row, attributes, with_split)) + "\n" for row in rows)
