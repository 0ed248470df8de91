"""Import human labels from a CSV or a Label Studio JSON export, all or nothing, reporting rows it skips.

A label is unique per (face, attribute, source): importing the same file again updates the values instead of
adding rows. Rows that name no recorded face, hold a bad value or an unknown attribute are skipped with their
line (or task) number and the reason; everything else is written in the caller's one transaction.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from annotator.errors import LabelFileError, LabelRowError
from annotator.faces.lookup import FaceKey, FaceLookup
from annotator.labels.label_studio import read_tasks
from annotator.labels.records import KEY_FIELDS, LabelRecord, parse_value
from db.models import Label, utcnow
from db.queries import QUERY_BATCH, batched, upsert


@dataclass
class ImportResult:
    """What an import wrote and what it skipped (each problem as "line 7: reason")."""

    labels: int = 0
    faces: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Rows (or tasks) skipped."""
        return len(self.problems)

    def summary(self) -> str:
        """The one-line summary the CLI prints."""
        return f"imported {self.labels} labels for {self.faces} faces, skipped {self.skipped} rows"


def read_csv(path: Path) -> Iterator[LabelRecord]:
    """The rows of a labels CSV keyed by ``sha256`` or ``path``; empty cells are no label."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            if "sha256" not in header and "path" not in header:
                raise LabelFileError(f"{path} has neither a sha256 nor a path column to say which image a row "
                                     f"labels. Found columns: {', '.join(header) or 'none'}.")
            for row in reader:
                cells = {(name or "").strip(): (value or "").strip() for name, value in row.items()
                         if isinstance(value, str)}
                keys = {name: cells[name] for name in KEY_FIELDS if cells.get(name)}
                values = {name: value for name, value in cells.items() if name not in KEY_FIELDS and value}
                yield LabelRecord(f"line {reader.line_num}", keys, values)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LabelFileError(f"Cannot read {path} as CSV: {error}.") from None


def read_records(path: Path) -> Iterator[LabelRecord]:
    """Records of ``path``: Label Studio JSON when it starts with ``[`` or ``{``, CSV otherwise."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as error:
        raise LabelFileError(f"Cannot read {path}: {error.strerror or error}.") from None
    return read_tasks(path) if head[:1] in (b"[", b"{") else read_csv(path)


def _face_key(keys: dict[str, str]) -> FaceKey:
    index = keys.get("face_index", "0")
    try:
        face_index = int(float(index))
    except ValueError:
        raise LabelRowError(f"face_index must be a whole number. Received: {index!r}") from None
    if face_index < 0 or face_index != float(index):
        raise LabelRowError(f"face_index must be a whole number of at least 0. Received: {index!r}")
    return FaceKey(keys.get("sha256"), keys.get("path"), face_index, keys.get("method"))


def _resolve(lookup: FaceLookup, record: LabelRecord) -> tuple[int, dict[str, float]]:
    """(face id, {attribute: value}) of a record, or :class:`LabelRowError`."""
    if record.problem:
        raise LabelRowError(record.problem)
    values = {attribute: parse_value(attribute, raw) for attribute, raw in record.values.items()}
    return lookup.face_id(_face_key(record.keys)), values


def import_labels(session: Session, path: Path, source: str | None = None) -> ImportResult:
    """Store the labels of ``path`` under ``source`` (default: the file's name); commit is the caller's."""
    path = path.expanduser()
    if not path.is_file():
        raise LabelFileError(f"No labels file at {path}.")
    source = source or path.name
    lookup = FaceLookup(session, path.resolve().parent)
    result = ImportResult()
    labels: dict[tuple[int, str], float] = {}  # a later row for the same face and attribute wins
    for record in read_records(path):
        if not record.values and not record.problem:
            continue  # nothing labelled in this row
        try:
            face_id, values = _resolve(lookup, record)
        except LabelRowError as error:
            result.problems.append(f"{record.where}: {error}")
            continue
        labels.update(((face_id, attribute), value) for attribute, value in values.items())
    now = utcnow()
    rows = [{"face_id": face_id, "attribute": attribute, "value": value, "source": source, "created_at": now}
            for (face_id, attribute), value in labels.items()]
    for group in batched(rows, QUERY_BATCH):
        upsert(session, Label, group, keys=["face_id", "attribute", "source"], update=["value"])
    result.labels, result.faces = len(rows), len({face_id for face_id, _ in labels})
    return result
