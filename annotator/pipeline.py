"""Annotate one chunk of a job: decode, run the chain in one batch, write every row in one transaction.

This is the plain function behind the Celery task; the eager path, the workers and the tests all call it.
It is idempotent: rows are inserted ignoring conflicts and only still-pending images change status, so a
redelivered chunk neither duplicates nor loses work.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from annotator.chain import load_chain, run_chain
from annotator.images import decode_batch
from annotator.settings import Settings
from annotator.specs import OutputKind
from db.models import (
    ChunkStatus,
    Face,
    Image,
    ImageStatus,
    Job,
    JobChunk,
    JobImage,
    JobStatus,
    ModelVersion,
    Prediction,
    utcnow,
)
from db.queries import insert_ignoring_conflicts
from db.session import transaction

ALIGNED = "aligned"


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


def _pending_members(session: Session, job_id: int, chunk: int) -> list[_Member]:
    rows = session.execute(
        select(JobImage.id, JobImage.image_id, JobImage.path, Image.sha256).join(Image).where(
            JobImage.job_id == job_id, JobImage.chunk == chunk, JobImage.status == ImageStatus.PENDING.value
        ).order_by(JobImage.id)
    )
    return [_Member(*row) for row in rows]


def _job_versions(session: Session, job_id: int) -> list[ModelVersion]:
    job = session.get_one(Job, job_id)
    by_id = {mv.id: mv for mv in session.scalars(select(ModelVersion).where(ModelVersion.id.in_(job.model_version_ids)))}
    return [by_id[i] for i in job.model_version_ids]


def _face_ids(session: Session, image_ids: list[int]) -> dict[int, int]:
    insert_ignoring_conflicts(
        session, Face, [{"image_id": i, "method": ALIGNED, "index": 0, "box": None, "landmarks": None, "score": None}
                        for i in image_ids]
    )
    rows = session.execute(
        select(Face.image_id, Face.id).where(Face.image_id.in_(image_ids), Face.method == ALIGNED, Face.index == 0)
    )
    return {image_id: face_id for image_id, face_id in rows}


def _prediction_rows(chain, outputs: dict[str, np.ndarray], face_ids: list[int]) -> list[dict]:  # type: ignore[no-untyped-def]
    rows = []
    for model in chain:
        values = outputs[model.spec.name]
        for row, face_id in enumerate(face_ids):
            if model.spec.output is OutputKind.GENDER_SOFTMAX:
                male, female = (float(p) for p in values[row])
                value, extra = male, {"male_prob": male, "female_prob": female}
            else:
                value, extra = float(values[row]), None
            rows.append({"face_id": face_id, "attribute": model.spec.name, "value": value, "extra": extra,
                         "model_version_id": model.version_id})
    return rows


def _mark(session: Session, member_ids: list[int], status: ImageStatus, reason: str | None = None,
          detail: str | None = None) -> None:
    if member_ids:
        session.execute(
            update(JobImage)
            .where(JobImage.id.in_(member_ids), JobImage.status == ImageStatus.PENDING.value)
            .values(status=status.value, reason=reason, detail=detail, updated_at=utcnow())
        )


def finish_job_if_complete(session: Session, job_id: int) -> bool:
    """Mark the job finished when nothing is pending; True only for the one call that did it."""
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


def _chunk_filter(job_id: int, chunk: int):  # type: ignore[no-untyped-def]
    return (JobChunk.job_id == job_id, JobChunk.chunk == chunk)


def _start_chunk(session: Session, job_id: int, chunk: int) -> bool:
    """Record that this process took the chunk; False when the job was cancelled."""
    if session.scalar(select(Job.status).where(Job.id == job_id)) == JobStatus.CANCELLED.value:
        return False
    session.execute(
        update(JobChunk).where(*_chunk_filter(job_id, chunk)).values(
            status=ChunkStatus.RUNNING.value, attempts=JobChunk.attempts + 1, started_at=utcnow(),
            worker=f"{socket.gethostname()}:{os.getpid()}",
        )
    )
    return True


def _finish_chunk(session: Session, job_id: int, chunk: int) -> None:
    session.execute(update(JobChunk).where(*_chunk_filter(job_id, chunk))
                    .values(status=ChunkStatus.DONE.value, finished_at=utcnow()))
    finish_job_if_complete(session, job_id)


def process_chunk(factory: sessionmaker[Session], settings: Settings, job_id: int, chunk: int) -> ChunkOutcome:
    """Annotate the pending images of chunk ``chunk`` of job ``job_id``."""
    with transaction(factory) as session:
        if not _start_chunk(session, job_id, chunk):
            return ChunkOutcome(job_id, chunk, 0, 0)
    with factory() as session:
        members = _pending_members(session, job_id, chunk)
        versions = _job_versions(session, job_id)
    if not members:
        with transaction(factory) as session:
            _finish_chunk(session, job_id, chunk)
        return ChunkOutcome(job_id, chunk, 0, 0)

    faces, ok_indices, failures = decode_batch(
        [Path(m.path) for m in members], max_pixels=settings.max_image_pixels,
        expected_sha256=[m.sha256 for m in members],
    )
    ok_members = [members[i] for i in ok_indices]
    chain = load_chain(versions) if ok_members else []
    outputs = run_chain(chain, faces) if ok_members else {}

    with transaction(factory) as session:
        if ok_members:
            face_by_image = _face_ids(session, [m.image_id for m in ok_members])
            insert_ignoring_conflicts(
                session, Prediction, _prediction_rows(chain, outputs,
                                                      [face_by_image[m.image_id] for m in ok_members])
            )
            _mark(session, [m.id for m in ok_members], ImageStatus.DONE)
        for index, failure in failures:
            _mark(session, [members[index].id], ImageStatus.FAILED, failure.reason.value, failure.detail)
        _finish_chunk(session, job_id, chunk)
    return ChunkOutcome(job_id, chunk, len(ok_members), len(failures))
