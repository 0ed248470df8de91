"""The sweep that heals jobs: live workers, ``submit --wait`` and ``status --watch`` run it every few seconds.

One sweep
- re-queues chunks whose lease expired (their worker was killed, froze, or lost its machine),
- sends again chunks recorded as queued that nobody took for ``requeue_seconds`` while their queue holds no
  message (the message was lost: Redis restarted empty, a flushed queue, a submit killed between recording
  and sending),
- gives up on a chunk that ``MAX_CHUNK_ATTEMPTS`` workers took without finishing (its images fail with
  ``abandoned``, so the job still ends; ``annotate jobs retry`` tries them again),
- marks ``interrupted`` a job whose ``submit`` stopped renewing its recording lease (killed while recording),
- and finishes running jobs with nothing pending (a backstop; chunks finish their job themselves).

Every step is a compare-and-set on the rows it changes, so any number of sweepers may run at once; the broker
is only asked how many messages wait in a queue and given chunks to send (:class:`Broker`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from annotator.jobs.pipeline import finish_job_if_complete
from annotator.settings import Settings
from db.models import ChunkStatus, ImageStatus, Job, JobChunk, JobImage, JobStatus, utcnow
from db.session import transaction

log = logging.getLogger(__name__)

MAX_CHUNK_ATTEMPTS = 5
"""Workers that may take one chunk before its images are failed with ``abandoned``."""
ABANDONED = "abandoned"


class Broker(Protocol):
    """What a sweep needs of the message broker."""

    def send(self, job_id: int, chunk: int, queue: str) -> None:
        """Queue one chunk's task."""

    def waiting(self, queue: str) -> int:
        """Messages waiting in ``queue`` (not yet given to a worker)."""


@dataclass(frozen=True)
class ChunkRef:
    """One chunk of a job and the queue its job runs on."""

    job_id: int
    chunk: int
    queue: str


@dataclass
class SweepReport:
    """What one sweep did."""

    expired: list[ChunkRef] = field(default_factory=list)  # lease expired: queued again
    resent: list[ChunkRef] = field(default_factory=list)  # queued, but its message was lost: sent again
    abandoned: list[ChunkRef] = field(default_factory=list)  # too many attempts: its images failed
    interrupted: list[int] = field(default_factory=list)  # jobs whose submit died while recording
    finished: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.expired or self.resent or self.abandoned or self.interrupted or self.finished)


def _update(session: Session, statement):  # type: ignore[no-untyped-def]
    # The chunks were loaded as objects; the statements say which rows they change, nothing to re-evaluate.
    return session.execute(statement, execution_options={"synchronize_session": False})


def _has_pending(chunk: type[JobChunk] = JobChunk):  # type: ignore[no-untyped-def]
    return exists().where(JobImage.job_id == chunk.job_id, JobImage.chunk == chunk.chunk,
                          JobImage.status == ImageStatus.PENDING.value)


def mark_interrupted(session: Session) -> list[int]:
    """Jobs still ``recording`` whose submit stopped renewing its lease become ``interrupted``."""
    now = utcnow()
    stale = session.scalars(select(Job.id).where(
        Job.status == JobStatus.RECORDING.value,
        (Job.lease_expires_at.is_(None)) | (Job.lease_expires_at < now))).all()
    marked = []
    for job_id in stale:
        result = _update(session, update(Job).where(
            Job.id == job_id, Job.status == JobStatus.RECORDING.value,
            (Job.lease_expires_at.is_(None)) | (Job.lease_expires_at < now)).values(status=JobStatus.INTERRUPTED.value))
        if result.rowcount:
            marked.append(job_id)
    return marked


def _abandon(session: Session, chunk: JobChunk) -> None:
    _update(session, update(JobImage).where(
        JobImage.job_id == chunk.job_id, JobImage.chunk == chunk.chunk, JobImage.status == ImageStatus.PENDING.value,
    ).values(status=ImageStatus.FAILED.value, reason=ABANDONED,
             detail=f"{chunk.attempts} workers took this chunk and none finished it"))
    _update(session, update(JobChunk).where(JobChunk.id == chunk.id)
                    .values(status=ChunkStatus.DONE.value, finished_at=utcnow(), lease_owner=None,
                            lease_expires_at=None))
    finish_job_if_complete(session, chunk.job_id)


def _live_chunks(session: Session, *conditions):  # type: ignore[no-untyped-def]
    """Chunks matching ``conditions`` of jobs that are not cancelled, with their job's queue."""
    return session.execute(
        select(JobChunk, Job.queue).join(Job, Job.id == JobChunk.job_id)
        .where(Job.status != JobStatus.CANCELLED.value, *conditions).order_by(JobChunk.job_id, JobChunk.chunk)
    ).all()


def expire_leases(session: Session, report: SweepReport) -> None:
    """Chunks whose lease expired go back to ``queued`` (or are done / abandoned); ``report`` lists them."""
    now = utcnow()
    for chunk, queue in _live_chunks(session, JobChunk.status == ChunkStatus.RUNNING.value,
                                     JobChunk.lease_expires_at < now):
        owner = chunk.lease_owner
        taken = _update(session, update(JobChunk).where(
            JobChunk.id == chunk.id, JobChunk.status == ChunkStatus.RUNNING.value, JobChunk.lease_expires_at < now,
            JobChunk.lease_owner.is_(None) if owner is None else JobChunk.lease_owner == owner,
        ).values(status=ChunkStatus.QUEUED.value, queued_at=now, lease_owner=None, lease_expires_at=None))
        if not taken.rowcount:
            continue  # another sweeper, or the worker itself, got there first
        ref = ChunkRef(chunk.job_id, chunk.chunk, queue)
        if not session.scalar(select(_has_pending()).where(JobChunk.id == chunk.id)):
            _update(session, update(JobChunk).where(JobChunk.id == chunk.id)
                            .values(status=ChunkStatus.DONE.value, finished_at=now))
            finish_job_if_complete(session, chunk.job_id)
        elif chunk.attempts >= MAX_CHUNK_ATTEMPTS:
            _abandon(session, chunk)
            report.abandoned.append(ref)
        else:
            report.expired.append(ref)


def lost_messages(session: Session, broker: Broker, requeue_seconds: int, report: SweepReport) -> None:
    """Queued chunks nobody took for ``requeue_seconds`` while their queue is empty; ``report.resent`` lists them."""
    now = utcnow()
    candidates = _live_chunks(session, JobChunk.status == ChunkStatus.QUEUED.value,
                              JobChunk.queued_at < now - timedelta(seconds=requeue_seconds))
    empty: dict[str, bool] = {}
    for chunk, queue in candidates:
        if queue not in empty:
            try:
                empty[queue] = broker.waiting(queue) == 0
            except Exception as error:  # noqa: BLE001 - any broker's failure: ask again at the next sweep
                log.warning("sweep: cannot ask the broker how many messages wait in %r: %s", queue, error)
                empty[queue] = False
        if not empty[queue]:
            continue  # messages wait: workers are busy, and this chunk's message may be among them
        resent = _update(session, update(JobChunk).where(
            JobChunk.id == chunk.id, JobChunk.status == ChunkStatus.QUEUED.value, JobChunk.queued_at == chunk.queued_at,
        ).values(queued_at=now))
        if resent.rowcount:
            report.resent.append(ChunkRef(chunk.job_id, chunk.chunk, queue))


def finish_complete_jobs(session: Session) -> list[int]:
    """Finish running jobs with no pending image (each finished exactly once: compare-and-set)."""
    pending = exists().where(JobImage.job_id == Job.id, JobImage.status == ImageStatus.PENDING.value)
    ids = session.scalars(select(Job.id).where(Job.status == JobStatus.RUNNING.value, ~pending)).all()
    return [job_id for job_id in ids if finish_job_if_complete(session, job_id)]


def sweep(factory: sessionmaker[Session], settings: Settings, broker: Broker | None) -> SweepReport:
    """One sweep (see the module's docstring); without a broker only the database-side steps run."""
    report = SweepReport()
    with transaction(factory) as session:
        report.interrupted = mark_interrupted(session)
    if broker is not None:
        with transaction(factory) as session:
            expire_leases(session, report)
        with transaction(factory) as session:
            lost_messages(session, broker, settings.requeue_seconds, report)
        for ref in report.expired + report.resent:
            try:
                broker.send(ref.job_id, ref.chunk, ref.queue)
            except Exception as error:  # noqa: BLE001 - any broker's failure
                # The chunk stays queued: a later sweep finds it again as a lost message.
                log.warning("sweep: could not send chunk %s of job %s: %s", ref.chunk, ref.job_id, error)
    with transaction(factory) as session:
        report.finished = finish_complete_jobs(session)
    if report:
        log.info("sweep: %s", report)
    return report
