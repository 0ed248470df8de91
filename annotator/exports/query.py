"""The one export query: a row per annotated face, with predictions, labels and their provenance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import UnknownJobError
from annotator.exports.options import SOURCES
from annotator.jobs.staleness import ChainVersions
from annotator.models.provenance import computed_by
from annotator.models.store import active_chain_versions
from annotator.teachers.values import teacher_values
from db.models import Face, Image, ImageStatus, Job, JobImage, Label, ModelVersion, Prediction
from db.queries import QUERY_BATCH, batched

LABEL_PREFIX = "label:"


@dataclass
class FaceRow:
    """Everything exported about one face."""

    path: str
    sha256: str
    face_index: int
    method: str = "aligned"
    box: list[float] | None = None  # [left, top, right, bottom]; None for an aligned portrait
    landmarks: list[list[float]] | None = None  # five (x, y) points; None for an aligned portrait
    values: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # attribute -> "gender@3", "label:SOURCE", "teacher:NAME"
    split: str | None = None  # set by annotator.exports.splits when the export is split

    def is_labelled(self, attribute: str) -> bool:
        """True when ``attribute``'s value is a human or imported label rather than a prediction."""
        return self.sources.get(attribute, "").startswith(LABEL_PREFIX)


def chain_for(session: Session, job_id: int | None) -> list[ModelVersion]:
    """The versions of the active chain, or those ``job_id`` ran."""
    if job_id is None:
        return active_chain_versions(session)
    job = session.get(Job, job_id)
    if job is None:
        raise UnknownJobError(f"No job {job_id}. See `annotate status` for the list of jobs.")
    by_id = {v.id: v for v in session.scalars(select(ModelVersion).where(ModelVersion.id.in_(job.model_version_ids)))}
    return [by_id[i] for i in job.model_version_ids]


def predicted_rows(session: Session, job_id: int | None = None) -> dict[int, FaceRow]:
    """Rows by face id with the current predictions of the active chain (or of one job's chain), no labels."""
    versions = chain_for(session, job_id)
    labels = {v.id: v.label for v in versions}
    query = (
        select(Face.id, Face.index, Face.method, Face.box, Face.landmarks, Image.sha256, Image.path,
               Prediction.attribute, Prediction.value, Prediction.extra, Prediction.model_version_id)
        .join(Image, Image.id == Face.image_id)
        .join(Prediction, Prediction.face_id == Face.id)
        .where(ChainVersions.of(versions).current())
    )
    if job_id is not None:
        query = query.where(Image.id.in_(
            select(JobImage.image_id).where(JobImage.job_id == job_id,
                                            JobImage.status.in_([ImageStatus.DONE.value, ImageStatus.SKIPPED.value]))
        ))
    rows: dict[int, FaceRow] = {}
    for face_id, index, method, box, landmarks, sha, path, attribute, value, extra, version_id in session.execute(query):
        row = rows.setdefault(face_id, FaceRow(path, sha, index, method, box, landmarks))
        if attribute == "gender" and extra:
            row.values["male_prob"], row.values["female_prob"] = extra["male_prob"], extra["female_prob"]
        else:
            row.values[attribute] = value
        row.sources[attribute] = computed_by(labels[version_id], extra)
    return rows


def teacher_rows(session: Session, job_id: int | None = None) -> dict[int, FaceRow]:
    """Rows by face id with the teachers' values (``teacher:NAME`` sources), no labels; of one job's images."""
    values = teacher_values(session)
    query = (select(Face.id, Face.index, Face.method, Face.box, Face.landmarks, Image.sha256, Image.path)
             .join(Image, Image.id == Face.image_id))
    if job_id is not None:
        if session.get(Job, job_id) is None:
            raise UnknownJobError(f"No job {job_id}. See `annotate status` for the list of jobs.")
        query = query.where(Image.id.in_(select(JobImage.image_id).where(JobImage.job_id == job_id)))
    rows: dict[int, FaceRow] = {}
    for group in batched(list(values), QUERY_BATCH):
        for face_id, index, method, box, landmarks, sha, path in session.execute(query.where(Face.id.in_(group))):
            row = rows[face_id] = FaceRow(path, sha, index, method, box, landmarks)
            for attribute, target in values[face_id].items():
                if attribute == "gender":  # stored as the female probability, like a gender label
                    row.values["male_prob"], row.values["female_prob"] = 1.0 - target.value, target.value
                else:
                    row.values[attribute] = target.value
                row.sources[attribute] = target.source
    return rows


def face_rows(session: Session, job_id: int | None = None, source: str = "best") -> Iterator[FaceRow]:
    """Rows for every annotated face (of one job, or of the active model versions), ordered by path.

    ``source`` "predictions" ignores labels; "best" and "labels" let labels win (the "labels" filter, which
    needs the chosen attributes, is :func:`annotator.exports.selection.select_rows`); "teachers" gives the
    teachers' values instead of the chain's, labels winning over them too.
    """
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}. Valid sources: {', '.join(SOURCES)}.")
    rows = teacher_rows(session, job_id) if source == "teachers" else predicted_rows(session, job_id)
    if source != "predictions":
        _apply_labels(session, rows)
    yield from sorted(rows.values(), key=lambda r: (r.path, r.face_index, r.method))


def winning_labels(session: Session) -> dict[tuple[int, str], tuple[float, str]]:
    """(value, source) by (face id, attribute): the newest label of each, the one that wins on export."""
    query = select(Label.face_id, Label.attribute, Label.value, Label.source).order_by(Label.created_at, Label.id)
    return {(face_id, attribute): (value, source) for face_id, attribute, value, source in session.execute(query)}


def _apply_labels(session: Session, rows: dict[int, FaceRow]) -> None:
    for (face_id, attribute), (value, source) in winning_labels(session).items():
        row = rows.get(face_id)
        if row is None:
            continue
        if attribute == "gender":  # a gender label is the female probability: 0 male, 1 female
            row.values["male_prob"], row.values["female_prob"] = 1.0 - value, value
        else:
            row.values[attribute] = value
        row.sources[attribute] = f"{LABEL_PREFIX}{source}"
