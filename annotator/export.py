"""Labelled training sets out of the database: one row per face, labels winning over predictions."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import UnknownJobError
from annotator.specs import attribute_names
from annotator.store import active_chain_versions
from db.models import Face, Image, ImageStatus, Job, JobImage, Label, ModelVersion, Prediction

# The seed project's `condition_data.txt` columns; the ones we have no model for stay empty.
CONDITION_DATA_COLUMNS = ["", "image_path", "male_prob", "female_prob", "hair_color", "mouth", "eyes",
                          "background_mean", "background_std"]


@dataclass
class FaceRow:
    """Everything exported about one face."""

    path: str
    sha256: str
    face_index: int
    values: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # attribute -> "gender@3" or "label:<source>"


def csv_columns() -> list[str]:
    """Columns of the csv export, derived from the model registry (optional models' columns empty when unused)."""
    attributes = attribute_names(include_optional=True)
    return (["path", "sha256", "face_index", "male_prob", "female_prob", *attributes, "gender_version"]
            + [f"{name}_version" for name in attributes])


def _versions_for(session: Session, job_id: int | None) -> list[int]:
    if job_id is None:
        return [v.id for v in active_chain_versions(session)]
    job = session.get(Job, job_id)
    if job is None:
        raise UnknownJobError(f"No job {job_id}. See `annotate status` for the list of jobs.")
    return list(job.model_version_ids)


def face_rows(session: Session, job_id: int | None = None) -> Iterator[FaceRow]:
    """Rows for every annotated face (of one job, or of the active model versions), ordered by path."""
    version_ids = _versions_for(session, job_id)
    labels = {v.id: v.label for v in session.scalars(select(ModelVersion).where(ModelVersion.id.in_(version_ids)))}
    query = (
        select(Face.id, Face.index, Image.sha256, Image.path, Prediction.attribute, Prediction.value,
               Prediction.extra, Prediction.model_version_id)
        .join(Image, Image.id == Face.image_id)
        .join(Prediction, Prediction.face_id == Face.id)
        .where(Prediction.model_version_id.in_(version_ids))
    )
    if job_id is not None:
        query = query.where(Image.id.in_(
            select(JobImage.image_id).where(JobImage.job_id == job_id,
                                            JobImage.status.in_([ImageStatus.DONE.value, ImageStatus.SKIPPED.value]))
        ))
    rows: dict[int, FaceRow] = {}
    for face_id, index, sha, path, attribute, value, extra, version_id in session.execute(query):
        row = rows.setdefault(face_id, FaceRow(path, sha, index))
        if attribute == "gender" and extra:
            row.values["male_prob"], row.values["female_prob"] = extra["male_prob"], extra["female_prob"]
        else:
            row.values[attribute] = value
        row.sources[attribute] = labels[version_id]
    _apply_labels(session, rows)
    yield from sorted(rows.values(), key=lambda r: (r.path, r.face_index))


def _apply_labels(session: Session, rows: dict[int, FaceRow]) -> None:
    query = select(Label.face_id, Label.attribute, Label.value, Label.source).order_by(Label.created_at)
    for face_id, attribute, value, source in session.execute(query):
        row = rows.get(face_id)
        if row is None:
            continue
        if attribute == "gender":  # a gender label is the female probability: 0 male, 1 female
            row.values["male_prob"], row.values["female_prob"] = 1.0 - value, value
        else:
            row.values[attribute] = value
        row.sources[attribute] = f"label:{source}"


def write_csv(rows: Iterator[FaceRow], out: TextIO) -> int:
    """Write the csv export; returns the number of rows."""
    columns = csv_columns()
    writer = csv.writer(out)
    writer.writerow(columns)
    count = 0
    for row in rows:
        record = {"path": row.path, "sha256": row.sha256, "face_index": row.face_index, **row.values}
        record.update({f"{name}_version": source for name, source in row.sources.items()})
        writer.writerow([record.get(column, "") for column in columns])
        count += 1
    return count


def write_condition_data(rows: Iterator[FaceRow], out: TextIO) -> int:
    """Write the seed project's ``condition_data`` layout; returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(CONDITION_DATA_COLUMNS)
    count = 0
    for row in rows:
        # The seed wrote each row from a one-row DataFrame, so its index column is always 0.
        record = {"": 0, "image_path": row.path, **row.values}
        writer.writerow([record.get(column, "") for column in CONDITION_DATA_COLUMNS])
        count += 1
    return count


WRITERS = {"csv": write_csv, "condition-data": write_condition_data}
