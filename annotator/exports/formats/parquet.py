"""Parquet export through pyarrow, an optional extra imported only when this format is used."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from annotator.errors import MissingExtraError
from annotator.exports.columns import csv_columns, record
from annotator.exports.query import FaceRow

INSTALL_HINT = "pip install 'annotate[export]'"


def import_pyarrow() -> ModuleType:
    """``pyarrow``, or :class:`MissingExtraError` naming the pip command that installs it."""
    try:
        import pyarrow
    except ImportError:
        raise MissingExtraError(f"The parquet format needs pyarrow, which is not installed: {INSTALL_HINT}") from None
    return pyarrow


def _schema(pa: ModuleType, columns: list[str]):  # type: ignore[no-untyped-def]
    # Explicit types, so a column that is empty in every row still has its real type rather than null.
    types = {"path": pa.string(), "sha256": pa.string(), "face_index": pa.int64(), "face_method": pa.string(),
             "box": pa.list_(pa.float64()), "split": pa.string()}
    return pa.schema([(c, types.get(c, pa.string() if c.endswith("_version") else pa.float64())) for c in columns])


def write_parquet(rows: Sequence[FaceRow], path: Path, attributes: list[str], with_split: bool = False) -> None:
    """One table with the csv columns; the box is a list of four floats, null for an aligned portrait."""
    pa = import_pyarrow()
    import pyarrow.parquet as pq

    columns = csv_columns(attributes, with_split)
    records = [record(row, attributes, with_split) for row in rows]
    table = pa.Table.from_pylist(records, schema=_schema(pa, columns))
    pq.write_table(table, path)
