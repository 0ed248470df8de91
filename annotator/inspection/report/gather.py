"""What a report shows, read from the database in a few set-based queries into NumPy arrays.

One query pivots the current predictions to one row per face (a column per attribute) and joins the stored
quality measures; the rest are counts grouped in SQL. Nothing here walks the faces one by one in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from annotator.exports.query import chain_for
from annotator.faces.quality import FLAGS
from annotator.jobs.staleness import ChainVersions, StaleSummary, faces_of_job, stale_summary
from annotator.jobs.status import JobSummary, job_summary, recent_jobs
from annotator.models.specs import OutputKind, get_spec
from db.models import Face, FaceQuality, Image, ImageStatus, Job, JobImage, Label, ModelVersion, Prediction

JOBS_LISTED = 50
EXAMPLES_PER_REASON = 3


@dataclass(frozen=True)
class Scope:
    """The whole database (``job_id`` None, the active chain) or one job (its chain, its faces)."""

    job_id: int | None
    versions: list[ModelVersion]
    faces: ColumnElement[bool] | None  # filter on Face; None: every face
    members: ColumnElement[bool] | None  # filter on JobImage; None: every job's members

    @property
    def chain(self) -> ChainVersions:
        """The chain whose predictions are current in this scope."""
        return ChainVersions.of(self.versions)

    @property
    def attributes(self) -> list[str]:
        """The chain's attributes, gender first."""
        return [v.name for v in self.versions]


def report_scope(session: Session, job_id: int | None) -> Scope:
    """The scope of a report of one job, or of the whole database when ``job_id`` is None."""
    versions = chain_for(session, job_id)
    if job_id is None:
        return Scope(None, versions, None, None)
    return Scope(job_id, versions, faces_of_job(session, job_id), JobImage.job_id == job_id)


@dataclass
class FaceTable:
    """One entry per face with current predictions, ordered by face id; NaN where a value is unknown.

    ``values["gender"]`` is the female probability.
    """

    face_id: np.ndarray
    image_id: np.ndarray
    score: np.ndarray  # detector score, NaN for aligned portraits
    values: dict[str, np.ndarray]
    brightness: np.ndarray
    sharpness: np.ndarray
    flags: dict[str, np.ndarray]
    measured: np.ndarray  # a quality row exists (its measures may still be NaN: file unreadable)

    def __len__(self) -> int:
        return len(self.face_id)

    def positions(self, face_ids: np.ndarray) -> np.ndarray:
        """Index of each of ``face_ids`` in this table, -1 for faces it does not hold."""
        if not len(self.face_id):
            return np.full(len(face_ids), -1, np.int64)
        where = np.clip(np.searchsorted(self.face_id, face_ids), 0, len(self.face_id) - 1)
        return np.where(self.face_id[where] == face_ids, where, -1)


def _value_column(version: ModelVersion):  # type: ignore[no-untyped-def]
    # A gender prediction's value is the male probability; the report works with the female one.
    value = 1.0 - Prediction.value if get_spec(version.name).output is OutputKind.GENDER_SOFTMAX else Prediction.value
    return func.max(case((Prediction.model_version_id == version.id, value), else_=None)).label(version.name)


def _floats(column: tuple) -> np.ndarray:  # type: ignore[type-arg]
    return np.array(column, np.float64)  # None becomes NaN


def face_table(session: Session, scope: Scope) -> FaceTable:
    """Every face of the scope that has a current prediction, with its values and quality measures."""
    pivot = (select(Prediction.face_id, *(_value_column(v) for v in scope.versions))
             .where(scope.chain.current()).group_by(Prediction.face_id).subquery())
    query = (select(Face.id, Face.image_id, Face.score, *(pivot.c[name] for name in scope.attributes),
                    FaceQuality.face_id, FaceQuality.brightness, FaceQuality.sharpness,
                    *(getattr(FaceQuality, flag) for flag in FLAGS))
             .join(pivot, pivot.c.face_id == Face.id)
             .outerjoin(FaceQuality, FaceQuality.face_id == Face.id)
             .order_by(Face.id))
    if scope.faces is not None:
        query = query.where(scope.faces)
    rows = session.execute(query).all()
    n_attributes = len(scope.attributes)
    columns = list(zip(*rows)) if rows else [()] * (3 + n_attributes + 3 + len(FLAGS))
    first_quality = 3 + n_attributes
    return FaceTable(
        face_id=np.array(columns[0], np.int64), image_id=np.array(columns[1], np.int64),
        score=_floats(columns[2]),
        values={name: _floats(columns[3 + i]) for i, name in enumerate(scope.attributes)},
        measured=~np.isnan(_floats(columns[first_quality])),
        brightness=_floats(columns[first_quality + 1]), sharpness=_floats(columns[first_quality + 2]),
        flags={flag: np.array(columns[first_quality + 3 + i], dtype=bool) for i, flag in enumerate(FLAGS)},
    )


@dataclass(frozen=True)
class ReasonGroup:
    """The members of one status with one reason code, and a few examples (path, detail)."""

    status: str
    reason: str
    count: int
    examples: list[tuple[str, str]] = field(default_factory=list)


def outcomes(session: Session, scope: Scope) -> dict[str, int]:
    """Job members per status (done, skipped, failed, pending)."""
    query = select(JobImage.status, func.count()).group_by(JobImage.status)
    if scope.members is not None:
        query = query.where(scope.members)
    return {status: count for status, count in session.execute(query)}


def reason_groups(session: Session, scope: Scope) -> list[ReasonGroup]:
    """Skipped and failed members by reason code, most frequent first, each with a few examples."""
    not_done = JobImage.status.in_([ImageStatus.SKIPPED.value, ImageStatus.FAILED.value])
    where = not_done if scope.members is None else and_(not_done, scope.members)
    reason = func.coalesce(JobImage.reason, "unknown")
    counts = session.execute(select(JobImage.status, reason, func.count()).where(where)
                             .group_by(JobImage.status, reason)).all()
    rank = func.row_number().over(partition_by=(JobImage.status, reason), order_by=JobImage.id).label("rank")
    ranked = select(JobImage.status, reason.label("reason"), JobImage.path, JobImage.detail, rank).where(where).subquery()
    examples: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for status, code, path, detail, _ in session.execute(select(ranked).where(ranked.c.rank <= EXAMPLES_PER_REASON)
                                                         .order_by(ranked.c.status, ranked.c.reason, ranked.c.rank)):
        examples.setdefault((status, code), []).append((path, detail or ""))
    groups = [ReasonGroup(status, code, count, examples.get((status, code), [])) for status, code, count in counts]
    return sorted(groups, key=lambda g: (g.status != ImageStatus.FAILED.value, -g.count, g.reason))


@dataclass(frozen=True)
class VersionUse:
    """A model version of the scope's chain, or one whose predictions the scope's faces still hold."""

    label: str
    is_demo: bool
    active: bool
    in_chain: bool
    predictions: int
    created_at: datetime


def version_uses(session: Session, scope: Scope) -> list[VersionUse]:
    """The chain's versions and every version with predictions on the scope's faces, with their counts."""
    query = select(Prediction.model_version_id, func.count()).group_by(Prediction.model_version_id)
    if scope.faces is not None:
        query = query.join(Face, Face.id == Prediction.face_id).where(scope.faces)
    counts = dict(session.execute(query).all())
    chain_ids = {v.id for v in scope.versions}
    versions = session.scalars(select(ModelVersion).where(ModelVersion.id.in_(sorted(set(counts) | chain_ids)))
                               .order_by(ModelVersion.name, ModelVersion.version)).all()
    return [VersionUse(v.label, v.is_demo, v.active, v.id in chain_ids, counts.get(v.id, 0), v.created_at)
            for v in versions]


@dataclass(frozen=True)
class RunFacts:
    """The run at a glance."""

    jobs: list[JobSummary]
    more_jobs: int  # jobs not listed
    images: int
    faces: int  # faces recorded in the scope, current predictions or not
    outcomes: dict[str, int]
    reasons: list[ReasonGroup]
    versions: list[VersionUse]
    stale: StaleSummary


def run_facts(session: Session, scope: Scope) -> RunFacts:
    """Jobs, counts, reasons, model versions and staleness of the scope."""
    if scope.job_id is not None:
        jobs, more = [job_summary(session, scope.job_id)], 0
        images = session.scalar(select(func.count(func.distinct(JobImage.image_id))).where(scope.members)) or 0
    else:
        jobs = recent_jobs(session, JOBS_LISTED)
        more = max((session.scalar(select(func.count()).select_from(Job)) or 0) - len(jobs), 0)
        images = session.scalar(select(func.count()).select_from(Image)) or 0
    face_count = select(func.count()).select_from(Face)
    if scope.faces is not None:
        face_count = face_count.where(scope.faces)
    return RunFacts(jobs, more, images, session.scalar(face_count) or 0, outcomes(session, scope),
                    reason_groups(session, scope), version_uses(session, scope),
                    stale_summary(session, scope.chain, scope.job_id))


@dataclass(frozen=True)
class LabelColumns:
    """The winning (newest) human label of each labelled attribute, as positions in a :class:`FaceTable`."""

    positions: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    sources: dict[str, int]  # label rows per source, for the legend


def winning_labels(session: Session, table: FaceTable) -> LabelColumns:
    """Newest label per face and attribute (the one an export uses), for the faces of ``table``."""
    rank = func.row_number().over(partition_by=(Label.face_id, Label.attribute),
                                  order_by=(Label.created_at.desc(), Label.id.desc())).label("rank")
    newest = select(Label.face_id, Label.attribute, Label.value, rank).subquery()
    rows = session.execute(select(newest.c.face_id, newest.c.attribute, newest.c.value)
                           .where(newest.c.rank == 1).order_by(newest.c.attribute, newest.c.face_id)).all()
    sources = dict(session.execute(select(Label.source, func.count()).group_by(Label.source)).all())
    positions: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    if rows:
        face_ids = np.array([r[0] for r in rows], np.int64)
        attributes = np.array([r[1] for r in rows])
        label_values = np.array([r[2] for r in rows], np.float64)
        where = table.positions(face_ids)
        for attribute in np.unique(attributes):
            keep = (attributes == attribute) & (where >= 0)
            if keep.any():
                positions[str(attribute)], values[str(attribute)] = where[keep], label_values[keep]
    return LabelColumns(positions, values, sources)
