"""Which predictions are current for a chain of model versions, derived from the versions alone.

A prediction is *current* for a chain when it was made by the chain's version of its attribute **and** with the
chain's gender version (``predictions.gender_version_id``; a gender prediction names its own version). A face's
attribute is *stale* when it has predictions but none is current (a newer version of the attribute, or of
gender, which every regressor consumes, was activated since), and *missing* when it has none at all (e.g. a
newly added attribute). Nothing is stored: activating a version changes the answer at once, and activating an
older version back makes its predictions current again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from annotator.errors import UnknownJobError
from annotator.faces.modes import FaceOptions
from annotator.models.specs import OutputKind, get_spec
from db.models import Face, ImageStatus, Job, JobImage, ModelVersion, Prediction
from db.queries import QUERY_BATCH, batched


@dataclass(frozen=True)
class ChainVersions:
    """The version id of each attribute of a chain, and the gender version its regressors take."""

    by_attribute: dict[str, int]
    gender_version_id: int

    @classmethod
    def of(cls, versions: Sequence[ModelVersion]) -> ChainVersions:
        """The chain made of ``versions`` (one per model, as a job records them)."""
        gender = [v.id for v in versions if get_spec(v.name).output is OutputKind.GENDER_SOFTMAX]
        if len(gender) != 1:
            raise ValueError(f"A chain needs exactly one gender version. Received: {[v.label for v in versions]}.")
        return cls({v.name: v.id for v in versions}, gender[0])

    def current(self) -> ColumnElement[bool]:
        """Filter on :class:`Prediction`: the rows this chain would write."""
        return and_(Prediction.model_version_id.in_(list(self.by_attribute.values())),
                    Prediction.gender_version_id == self.gender_version_id)

    def has_current(self, attribute: str) -> ColumnElement[bool]:
        """True for a :class:`Face` with a current prediction of ``attribute``."""
        return exists().where(Prediction.face_id == Face.id,
                              Prediction.model_version_id == self.by_attribute[attribute],
                              Prediction.gender_version_id == self.gender_version_id)

    def needs_predictions(self) -> ColumnElement[bool]:
        """True for a :class:`Face` lacking a current prediction of some attribute (stale or missing)."""
        return or_(*(~self.has_current(attribute) for attribute in self.by_attribute))


def already_annotated(session: Session, image_ids: Sequence[int], chain: ChainVersions, method: str) -> set[int]:
    """Ids of the images with faces found by ``method``, each with a current prediction of every attribute."""
    done: set[int] = set()
    for group in batched(list(image_ids), QUERY_BATCH):
        faces = select(Face.image_id, Face.id).where(Face.image_id.in_(group), Face.method == method)
        complete = (
            faces.join(Prediction, Prediction.face_id == Face.id)
            .where(chain.current())
            .group_by(Face.image_id, Face.id)
            .having(func.count(func.distinct(Prediction.model_version_id)) == len(chain.by_attribute))
            .subquery()
        )
        all_faces = faces.subquery()
        per_image = dict(session.execute(select(all_faces.c.image_id, func.count()).group_by(all_faces.c.image_id)).all())
        finished = dict(session.execute(select(complete.c.image_id, func.count()).group_by(complete.c.image_id)).all())
        done.update(image_id for image_id, count in per_image.items() if finished.get(image_id) == count)
    return done


def _has_any(attribute: str) -> ColumnElement[bool]:
    return exists().where(Prediction.face_id == Face.id, Prediction.attribute == attribute)


@dataclass(frozen=True)
class StaleSummary:
    """How many faces lack current predictions, overall and per attribute."""

    faces: int
    outdated: int  # faces with at least one stale or missing attribute
    stale: dict[str, int]
    missing: dict[str, int]


def faces_of_job(session: Session, job_id: int) -> ColumnElement[bool]:
    """Filter on :class:`Face`: the faces of a job's annotated (or already annotated) images."""
    job = session.get(Job, job_id)
    if job is None:
        raise UnknownJobError(f"No job {job_id}. See `annotate status` for the list of jobs.")
    method = FaceOptions.from_record(job.face_mode, job.face_options).method
    images = select(JobImage.image_id).where(
        JobImage.job_id == job_id, JobImage.status.in_([ImageStatus.DONE.value, ImageStatus.SKIPPED.value]))
    return and_(Face.method == method, Face.image_id.in_(images))


def _faces(session: Session, query: Select, job_id: int | None) -> Select:  # type: ignore[type-arg]
    return query if job_id is None else query.where(faces_of_job(session, job_id))


def stale_summary(session: Session, chain: ChainVersions, job_id: int | None = None) -> StaleSummary:
    """Count faces (of one job, or all) whose predictions are stale or missing for ``chain``."""
    attributes = list(chain.by_attribute)
    columns = [func.count(), func.coalesce(func.sum(case((chain.needs_predictions(), 1), else_=0)), 0)]
    for attribute in attributes:
        stale = and_(_has_any(attribute), ~chain.has_current(attribute))
        columns.append(func.coalesce(func.sum(case((stale, 1), else_=0)), 0))
        columns.append(func.coalesce(func.sum(case((~_has_any(attribute), 1), else_=0)), 0))
    row = session.execute(_faces(session, select(*columns).select_from(Face), job_id)).one()
    counts = [int(value) for value in row]
    return StaleSummary(counts[0], counts[1], dict(zip(attributes, counts[2::2])), dict(zip(attributes, counts[3::2])))


def images_needing_predictions(session: Session, chain: ChainVersions,
                               job_id: int | None = None) -> dict[str, list[int]]:
    """Ids of the images with a face lacking current predictions for ``chain``, by face method."""
    query = _faces(session, select(Face.method, Face.image_id).where(chain.needs_predictions()).distinct(), job_id)
    found: dict[str, list[int]] = {}
    for method, image_id in session.execute(query.order_by(Face.method, Face.image_id)):
        found.setdefault(method, []).append(image_id)
    return found
