"""Operating running jobs: cancel them, find chunks whose lease expired, and prepare chunks to run again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from annotator.errors import AnnotateError
from annotator.jobs.status import job_summary
from db.models import ChunkStatus, ImageStatus, Job, JobChunk, JobImage, JobStatus, utcnow


@dataclass(frozen=True)
class StalledChunk:
    """A chunk whose worker stopped renewing its lease (killed, frozen, cut off); a sweep queues it again."""

    job_id: int
    chunk: int
    worker: str | None
    started_at: datetime
    heartbeat_at: datetime | None
    attempts: int


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored as UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def stalled_chunks(session: Session, job_id: int) -> list[StalledChunk]:
    """Chunks of a job marked running whose lease has expired (their worker most likely died)."""
    now = datetime.now(timezone.utc)
    rows = session.scalars(
        select(JobChunk).where(JobChunk.job_id == job_id, JobChunk.status == ChunkStatus.RUNNING.value,
                               JobChunk.lease_expires_at < now)
        .order_by(JobChunk.chunk)
    )
    return [StalledChunk(c.job_id, c.chunk, c.worker, _aware(c.started_at),
                         None if c.heartbeat_at is None else _aware(c.heartbeat_at), c.attempts)
            for c in rows if c.started_at is not None]


CANCELLABLE = (JobStatus.RUNNING.value, JobStatus.RECORDING.value, JobStatus.INTERRUPTED.value)


def cancel_job(session: Session, job_id: int) -> int:
    """Cancel a job in progress: its pending images are skipped with reason ``cancelled``; returns how many."""
    summary = job_summary(session, job_id)
    if summary.status not in CANCELLABLE:
        raise AnnotateError(f"Job {job_id} is {summary.status}; only a running job can be cancelled.")
    # Images before the job row, in the order chunk transactions lock them, so the two never deadlock.
    result = session.execute(
        update(JobImage).where(JobImage.job_id == job_id, JobImage.status == ImageStatus.PENDING.value)
        .values(status=ImageStatus.SKIPPED.value, reason="cancelled", detail="the job was cancelled")
    )
    cancelled = session.execute(update(Job).where(Job.id == job_id, Job.status.in_(CANCELLABLE))
                                .values(status=JobStatus.CANCELLED.value, finished_at=utcnow()))
    if not cancelled.rowcount:
        raise AnnotateError(f"Job {job_id} finished while it was being cancelled.")
    return result.rowcount


def chunks_to_retry(session: Session, job_id: int) -> list[int]:
    """Reset a job's failed images to pending and return the chunks to queue again (failed, or lease expired)."""
    summary = job_summary(session, job_id)
    if summary.status == JobStatus.CANCELLED.value:
        raise AnnotateError(f"Job {job_id} was cancelled; submit its folder again instead.")
    failed_chunks = set(session.scalars(
        select(JobImage.chunk).where(JobImage.job_id == job_id, JobImage.status == ImageStatus.FAILED.value,
                                     JobImage.chunk.is_not(None))
    ))
    session.execute(
        update(JobImage).where(JobImage.job_id == job_id, JobImage.status == ImageStatus.FAILED.value,
                               JobImage.chunk.is_not(None))
        .values(status=ImageStatus.PENDING.value, reason=None, detail=None)
    )
    stalled = {c.chunk for c in stalled_chunks(session, job_id)}
    chunks = sorted(failed_chunks | stalled)
    if chunks:
        session.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.FINISHED.value)
                        .values(status=JobStatus.RUNNING.value, finished_at=None))
        session.execute(update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.chunk.in_(chunks))
                        .values(status=ChunkStatus.QUEUED.value, queued_at=utcnow(), lease_owner=None,
                                lease_expires_at=None))
    return chunks
