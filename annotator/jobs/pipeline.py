"""Annotate one chunk of a job: find its faces, run the chain in batches, write every row in one transaction.

This is the plain function behind the Celery task; the eager path, the workers and the tests all call it.
It is idempotent: rows are inserted ignoring conflicts and only still-pending images change status, so a
redelivered chunk neither duplicates nor loses work. Faces already recorded for an image by the same face
mode are reused, so a redelivery or a new model version sees exactly the same faces. An image that another job
annotated with the same model versions after this one was recorded (an overlapping or repeated submit) is skipped
as ``annotated``, as recording would have skipped it.

A chunk is worked on under a lease (:mod:`annotator.jobs.leases`): a chunk held by a live lease elsewhere, or
already done, is not taken again; a chunk whose lease is lost or handed back mid-way stops at its next image and
writes what it finished, leaving the rest pending for its new holder.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from annotator.faces.detection import Detection
from annotator.faces.extraction import ExtractedFace, ImageToExtract
from annotator.faces.modes import FaceMode, FaceOptions
from annotator.faces.pool import extract_images
from annotator.faces.quality import quality_rows
from annotator.images.decoding import ReasonCode
from annotator.jobs.leases import Lease, LeaseKeeper, finish_chunk, take_chunk
from annotator.jobs.staleness import ChainVersions, already_annotated
from annotator.models.chain import LoadedModel, load_chain, prepare_chain, run_chain
from annotator.models.provenance import precision_extra
from annotator.models.specs import OutputKind
from annotator.settings import DEFAULT_CHAIN_ENGINE, DEFAULT_PRECISION, Settings
from db.models import (
    Face,
    FaceQuality,
    Image,
    ImageStatus,
    Job,
    JobImage,
    JobStatus,
    ModelVersion,
    Prediction,
    utcnow,
)
from db.queries import insert_ignoring_conflicts
from db.session import transaction

OVERLAP_BATCH = 64
"""Faces per chain call: small enough that inference overlaps the next images' decoding and detection."""


@dataclass(frozen=True)
class ChunkOutcome:
    """What one chunk did."""

    job_id: int
    chunk: int
    done: int
    failed: int


@dataclass(frozen=True)
class _Member:
    id: int
    image_id: int
    path: str
    sha256: str
    phash: str | None


def _pending_members(session: Session, job_id: int, chunk: int) -> list[_Member]:
    rows = session.execute(
        select(JobImage.id, JobImage.image_id, JobImage.path, Image.sha256, Image.phash).join(Image).where(
            JobImage.job_id == job_id, JobImage.chunk == chunk, JobImage.status == ImageStatus.PENDING.value
        ).order_by(JobImage.id)
    )
    return [_Member(*row) for row in rows]


def _job_versions(session: Session, job: Job) -> list[ModelVersion]:
    by_id = {mv.id: mv for mv in session.scalars(select(ModelVersion).where(ModelVersion.id.in_(job.model_version_ids)))}
    return [by_id[i] for i in job.model_version_ids]


def recorded_detections(session: Session, image_ids: Sequence[int], method: str) -> dict[int, list[Detection]]:
    """Faces already found in these images by ``method``, in index order."""
    rows = session.execute(
        select(Face.image_id, Face.box, Face.landmarks, Face.score)
        .where(Face.image_id.in_(image_ids), Face.method == method).order_by(Face.image_id, Face.index)
    )
    found: dict[int, list[Detection]] = {}
    for image_id, box, landmarks, score in rows:
        found.setdefault(image_id, []).append(Detection(tuple(box), np.asarray(landmarks, np.float64), score))
    return found


def _face_row(image_id: int, method: str, face: ExtractedFace) -> dict[str, Any]:
    found = face.detection
    return {
        "image_id": image_id, "method": method, "index": face.index,
        "box": None if found is None else [round(v, 2) for v in found.box],
        "landmarks": None if found is None else np.round(found.landmarks, 2).tolist(),
        "score": None if found is None else round(found.score, 6),
    }


def record_faces(session: Session, method: str, faces: list[tuple[int, ExtractedFace]]) -> list[int]:
    """Record the faces (image id, face) and return their ids, in the same order."""
    insert_ignoring_conflicts(session, Face, [_face_row(image_id, method, face) for image_id, face in faces])
    rows = session.execute(
        select(Face.image_id, Face.index, Face.id)
        .where(Face.image_id.in_({image_id for image_id, _ in faces}), Face.method == method)
    )
    ids = {(image_id, index): face_id for image_id, index, face_id in rows}
    return [ids[(image_id, face.index)] for image_id, face in faces]


def _prediction_rows(chain: Sequence[LoadedModel], outputs: dict[str, np.ndarray], face_ids: list[int],
                     precision: str) -> list[dict[str, Any]]:
    rows = []
    gender_version_id = next(m.version_id for m in chain if m.spec.output is OutputKind.GENDER_SOFTMAX)
    computed = precision_extra(precision)
    for model in chain:
        values = outputs[model.spec.name]
        for row, face_id in enumerate(face_ids):
            if model.spec.output is OutputKind.GENDER_SOFTMAX:
                male, female = (float(p) for p in values[row])
                value, extra = male, {"male_prob": male, "female_prob": female, **computed}
            else:
                value, extra = float(values[row]), computed or None
            rows.append({"face_id": face_id, "attribute": model.spec.name, "value": value, "extra": extra,
                         "model_version_id": model.version_id, "gender_version_id": gender_version_id})
    return rows


def _quality_rows(faces: list[tuple[int, ExtractedFace]], face_ids: list[int]) -> list[dict[str, Any]]:
    """Quality measures of the faces, computed here because their aligned pixels are at hand."""
    return quality_rows(face_ids, np.stack([face.pixels for _, face in faces]),
                        [None if face.detection is None else face.detection.score for _, face in faces])


def _mark(session: Session, member_ids: list[int], status: ImageStatus, reason: str | None = None,
          detail: str | None = None) -> None:
    if member_ids:
        session.execute(
            update(JobImage)
            .where(JobImage.id.in_(member_ids), JobImage.status == ImageStatus.PENDING.value)
            .values(status=status.value, reason=reason, detail=detail, updated_at=utcnow())
        )


def _skip_annotated_elsewhere(session: Session, member_ids: list[int]) -> None:
    """Members whose images another job (an overlapping or repeated submit) annotated with the same model versions
    after this job was recorded: skipped, as recording skips them, rather than annotated twice."""
    _mark(session, member_ids, ImageStatus.SKIPPED, "annotated",
          "annotated by the same model versions in another job after this one was recorded")


def finish_job_if_complete(session: Session, job_id: int) -> bool:
    """Mark the job finished when nothing is pending; True only for the one call that did it.

    The job's row is locked first (``FOR UPDATE``; SQLite has one writer at a time anyway), so the checks of
    two chunk transactions committing together run one after the other: the second waits for the first to
    commit and then counts with a fresh snapshot (READ COMMITTED), which sees the first one's images settled.
    """
    status = session.scalar(select(Job.status).where(Job.id == job_id).with_for_update())
    if status != JobStatus.RUNNING.value:
        return False
    pending = session.scalar(
        select(func.count()).select_from(JobImage).where(
            JobImage.job_id == job_id, JobImage.status == ImageStatus.PENDING.value
        )
    )
    if pending:
        return False
    # The status guard makes this a compare-and-set: exactly one caller flips it.
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
        .values(status=JobStatus.FINISHED.value, finished_at=utcnow())
    )
    return result.rowcount == 1


def _finish_chunk(session: Session, lease: Lease, complete: bool) -> None:
    if complete:
        finish_chunk(session, lease)
    finish_job_if_complete(session, lease.job_id)


class FaceBatches:
    """Faces with their owners, run through the chain in batches as they arrive (so inference overlaps the
    decoding and detection of the next images)."""

    def __init__(self, chain_versions: Sequence[ModelVersion], home: Path, precision: str = DEFAULT_PRECISION,
                 engine: str = DEFAULT_CHAIN_ENGINE) -> None:
        self.chain_versions = list(chain_versions)
        self.home, self.precision, self.engine = home, precision, engine
        self.faces: list[tuple[int, ExtractedFace]] = []  # (owner, face)
        self._outputs: list[dict[str, np.ndarray]] = []
        self._waiting: list[np.ndarray] = []

    def add(self, owner: int, face: ExtractedFace) -> None:
        """Queue one face; runs the chain once :data:`OVERLAP_BATCH` faces wait."""
        self.faces.append((owner, face))
        self._waiting.append(face.pixels)
        if len(self._waiting) >= OVERLAP_BATCH:
            self._run_waiting()

    def _run_waiting(self) -> None:
        if self._waiting:
            self._outputs.append(run_chain(self.chain(), np.stack(self._waiting), engine=self.engine))
            self._waiting = []

    def chain(self) -> list[LoadedModel]:
        """The models the faces run through."""
        return load_chain(self.chain_versions, self.home, precision=self.precision)

    def prepare(self) -> None:
        """Make the chain ready to run (once per process): its converted model from the home's cache, or its
        models loaded and compiled."""
        prepare_chain(self.chain(), self.engine)

    def outputs(self) -> dict[str, np.ndarray]:
        """Every model's outputs for every face added, in order."""
        self._run_waiting()
        if not self._outputs:
            return {}
        return {name: np.concatenate([part[name] for part in self._outputs]) for name in self._outputs[0]}


def process_chunk(factory: sessionmaker[Session], settings: Settings, job_id: int, chunk: int, *,
                  owner: str | None = None, keeper: LeaseKeeper | None = None) -> ChunkOutcome:
    """Annotate the pending images of chunk ``chunk`` of job ``job_id``.

    ``owner`` names the delivery (the task id; a retry of it keeps the lease); ``keeper`` renews the lease
    while the chunk runs (without one the lease is not renewed).
    """
    with transaction(factory) as session:
        lease = take_chunk(session, job_id, chunk, owner or uuid.uuid4().hex, settings.lease_seconds)
    if lease is None:
        return ChunkOutcome(job_id, chunk, 0, 0)
    if keeper is not None:
        keeper.hold(lease)
    try:
        return _annotate(factory, settings, lease)
    finally:
        if keeper is not None:
            keeper.drop(lease)


def _annotate(factory: sessionmaker[Session], settings: Settings, lease: Lease) -> ChunkOutcome:
    job_id, chunk = lease.job_id, lease.chunk
    with factory() as session:
        job = session.get_one(Job, job_id)
        members = _pending_members(session, job_id, chunk)
        versions = _job_versions(session, job)
        options = FaceOptions.from_record(job.face_mode, job.face_options)
        finished = already_annotated(session, [m.image_id for m in members], ChainVersions.of(versions),
                                     options.method)
        annotated_elsewhere = [m.id for m in members if m.image_id in finished]
        members = [m for m in members if m.image_id not in finished]
        known = ({} if options.mode is FaceMode.ALIGNED
                 else recorded_detections(session, [m.image_id for m in members], options.method))
    if not members:
        with transaction(factory) as session:
            _skip_annotated_elsewhere(session, annotated_elsewhere)
            _finish_chunk(session, lease, complete=True)
        return ChunkOutcome(job_id, chunk, 0, 0)

    items = [ImageToExtract(m.path, m.sha256, known.get(m.image_id, ())) for m in members]
    found = FaceBatches(versions, settings.home, settings.precision, settings.chain_engine)
    done, no_face, failed = [], [], []
    hashed: list[dict[str, Any]] = []  # perceptual hashes of images decoded for the first time
    extracted_images = extract_images(items, options, max_pixels=settings.max_image_pixels,
                                      workers=settings.decode_workers)
    try:
        found.prepare()  # once per process, while the first images are being extracted
        for member, extracted in zip(members, extracted_images):
            if member.phash is None and extracted.phash is not None:
                hashed.append({"id": member.image_id, "phash": extracted.phash})
            if extracted.failure is not None:
                failed.append((member, extracted.failure))
            elif not extracted.faces:
                no_face.append(member)
            else:
                done.append(member)
                for face in extracted.faces:
                    found.add(member.image_id, face)
            if lease.stopped:  # lost or handed back: write what is finished, leave the rest pending
                break
    finally:
        extracted_images.close()
    complete = len(done) + len(no_face) + len(failed) == len(members)

    outputs = found.outputs()
    with transaction(factory) as session:
        if found.faces:
            face_ids = record_faces(session, options.method, found.faces)
            insert_ignoring_conflicts(session, Prediction,
                                      _prediction_rows(found.chain(), outputs, face_ids, found.precision))
            insert_ignoring_conflicts(session, FaceQuality, _quality_rows(found.faces, face_ids))
        if hashed:
            session.execute(update(Image), hashed)
        _skip_annotated_elsewhere(session, annotated_elsewhere)
        _mark(session, [m.id for m in done], ImageStatus.DONE)
        _mark(session, [m.id for m in no_face], ImageStatus.FAILED, ReasonCode.NO_FACE.value,
              f"no face of at least {options.min_face_size} pixels with a detector score of {options.min_score:.2f}")
        for member, failure in failed:
            _mark(session, [member.id], ImageStatus.FAILED, failure.reason.value, failure.detail)
        _finish_chunk(session, lease, complete)
    return ChunkOutcome(job_id, chunk, len(done), len(no_face) + len(failed))
