"""Record a job one batch at a time while its chunks are queued, and resume a job whose submit died.

Every batch recorded renews the job's recording lease. If the submitting process dies, the chunks already
recorded still run; a sweep marks the job ``interrupted`` once its lease expired (at once after Ctrl-C, SIGTERM or
an error), and the same submit resumes it. A database that goes away while recording (a restart) is waited for.

Without a broker the submit runs its chunks itself: stopped while they run, it leaves the job ``interrupted`` with
the chunk it was running queued again; killed outright (SIGKILL), it leaves the job ``running`` until the lease of
that chunk expires. Either way the same submit resumes the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from annotator.errors import SourceError
from annotator.faces.modes import FaceOptions
from annotator.images.discovery import Discovered
from annotator.jobs.creation import RECORDING_STATES, NewJob, Recorder, start_recording
from annotator.jobs.inputs import ImageSource, as_source, first_batch, unrecorded
from annotator.jobs.staleness import ChainVersions
from annotator.models.store import active_chain_versions
from annotator.settings import DEFAULT_LEASE_SECONDS, DEFAULT_QUEUE
from annotator.stopping import raise_if_stopped
from db.models import ChunkStatus, Job, JobChunk, JobStatus, utcnow
from db.session import outlasting_restarts, transaction

log = logging.getLogger(__name__)

OnChunks = Callable[[int, list[int]], None]


def _same_submit(session: Session, source: str, *, chunk_size: int, faces: FaceOptions, queue: str,
                 states: tuple[str, ...]) -> Iterator[Job]:
    """Jobs in ``states`` of the same submit (source, faces, chain versions, chunk size, queue), newest first."""
    versions = [v.id for v in active_chain_versions(session)]
    candidates = session.scalars(select(Job).where(
        Job.source == source, Job.face_mode == faces.mode.value, Job.chunk_size == chunk_size,
        Job.queue == queue, Job.status.in_(states)).order_by(Job.id.desc()))
    return (job for job in candidates if job.face_options == faces.to_record() and job.model_version_ids == versions)


def _live(expiry: datetime | None, now: datetime) -> bool:
    return expiry is not None and (expiry if expiry.tzinfo else expiry.replace(tzinfo=now.tzinfo)) > now


def interrupted_job(session: Session, source: str, *, chunk_size: int, faces: FaceOptions, queue: str) -> Job | None:
    """The newest job of the same submit whose submit died while recording it: ``interrupted``, or ``recording``
    with an expired lease."""
    now = utcnow()
    for job in _same_submit(session, source, chunk_size=chunk_size, faces=faces, queue=queue,
                            states=RECORDING_STATES):
        if job.status == JobStatus.INTERRUPTED.value or not _live(job.lease_expires_at, now):
            return job
    return None


def stranded_job(session: Session, source: str, *, chunk_size: int, faces: FaceOptions, queue: str) -> Job | None:
    """Without a broker: the newest ``running`` job of the same submit that no process runs any more (its submit
    was killed), made ``interrupted`` with its chunks queued again so that this submit resumes it.

    A job with a chunk under a live lease is left alone: its submit may still be running it."""
    now = utcnow()
    for job in _same_submit(session, source, chunk_size=chunk_size, faces=faces, queue=queue,
                            states=(JobStatus.RUNNING.value,)):
        running = session.scalars(select(JobChunk.lease_expires_at).where(
            JobChunk.job_id == job.id, JobChunk.status == ChunkStatus.RUNNING.value)).all()
        if any(_live(expiry, now) for expiry in running):
            continue
        _interrupt(session, job.id, JobStatus.RUNNING)
        return job
    return None


def _interrupt(session: Session, job_id: int, was: JobStatus) -> None:
    """The job, if it is still ``was``, becomes ``interrupted``; one that was ``running`` here (no broker) has the
    chunks it was running queued again, for its submit to resume."""
    session.execute(update(Job).where(Job.id == job_id, Job.status == was.value)
                    .values(status=JobStatus.INTERRUPTED.value, lease_expires_at=None))
    if was is JobStatus.RUNNING:
        session.execute(update(JobChunk).where(JobChunk.job_id == job_id,
                                               JobChunk.status == ChunkStatus.RUNNING.value)
                        .values(status=ChunkStatus.QUEUED.value, queued_at=utcnow(), lease_owner=None,
                                lease_expires_at=None))


def interrupt_job(factory: sessionmaker[Session], job_id: int, was: JobStatus) -> None:
    """Its submit was stopped (Ctrl-C, SIGTERM, an error) while the job was ``was`` (``recording``, or ``running``
    its chunks here without a broker): say so at once rather than when a lease expires, so that the same submit
    resumes it."""
    try:
        with transaction(factory) as session:
            _interrupt(session, job_id, was)
    except Exception as error:  # noqa: BLE001 - the database may be what failed; the lease then expires
        log.warning("could not mark job %s interrupted (%s); the same submit takes it up once its lease expires",
                    job_id, error)


def _reconnect(factory: sessionmaker[Session], recorder: Recorder) -> tuple[Recorder, set[str]]:
    """The recorder as the database has it (a failed batch was rolled back), to go on from there.

    Raises the database's error while it is still away. A chunk committed but not sent is a lost message,
    which sweeps send again."""
    with transaction(factory) as session:
        job = session.get_one(Job, recorder.job_id)
        return Recorder.resume(session, job, recorder.chain, recorder.method)


def _step(factory: sessionmaker[Session], recorder: Recorder, batch: Discovered | None, on_chunks: OnChunks,
          lease_seconds: int) -> Recorder:
    """Record ``batch`` (None: finish the job); after the database went away, go on from what it has."""

    def attempt(after_a_loss: bool) -> Recorder:
        nonlocal recorder
        todo = batch
        if after_a_loss:
            recorder, recorded = _reconnect(factory, recorder)
            todo = None if batch is None else unrecorded(batch, recorded)
        with transaction(factory) as session:
            recorder.renew(session, lease_seconds)
            ready = recorder.finish(session) if todo is None else recorder.add(session, todo)
        if ready:
            on_chunks(recorder.job_id, ready)
        return recorder

    return outlasting_restarts(attempt, f"recording job {recorder.job_id}")


def _chained(first: Discovered, rest: Iterator[Discovered]) -> Iterator[Discovered]:
    yield first
    yield from rest


def _open(factory: sessionmaker[Session], source: ImageSource, *, chunk_size: int, faces: FaceOptions, queue: str,
          lease_seconds: int, runs_here: bool) -> tuple[Recorder, set[str], list[int]]:
    """A new job's recorder, or an interrupted one's with the paths it recorded and its chunks still queued."""
    with transaction(factory) as session:
        same = {"chunk_size": chunk_size, "faces": faces, "queue": queue}
        job = interrupted_job(session, source.name, **same)
        if job is None and runs_here:
            job = stranded_job(session, source.name, **same)
        if job is None:
            recorder, recorded, waiting = start_recording(session, source, chunk_size, faces, queue=queue), set(), []
        else:
            recorder, recorded = Recorder.resume(session, job, ChainVersions.of(active_chain_versions(session)),
                                                 faces.method)
            waiting = list(session.scalars(select(JobChunk.chunk).where(
                JobChunk.job_id == job.id, JobChunk.status == ChunkStatus.QUEUED.value).order_by(JobChunk.chunk)))
        recorder.renew(session, lease_seconds)
    return recorder, recorded, waiting


def record_job(factory: sessionmaker[Session], source: ImageSource | str | Path, *, chunk_size: int,
               faces: FaceOptions, on_chunks: OnChunks, queue: str = DEFAULT_QUEUE,
               lease_seconds: int = DEFAULT_LEASE_SECONDS, runs_here: bool = False) -> NewJob:
    """Record a job for every image of ``source``, committed one batch at a time: ``on_chunks(job_id, chunks)``
    gets each chunk as soon as it is recorded, so workers start on a large folder (or prefix, listed
    and hashed page by page) while the rest is still recorded. An interrupted job of the same submit is resumed:
    the files it had not recorded are added to it, and its chunks still queued are sent again. With ``runs_here``
    (no broker: this process runs the chunks) a job of the same submit left ``running`` by a killed submit is
    resumed too."""
    source = as_source(source, chunk_size)
    first = first_batch(source)
    recorder, recorded, waiting = _open(factory, source, chunk_size=chunk_size, faces=faces, queue=queue,
                                        lease_seconds=lease_seconds, runs_here=runs_here)
    resumed = recorder.total if recorded else None
    failure: SourceError | None = None
    try:
        if waiting:
            on_chunks(recorder.job_id, waiting)
        try:
            for batch in _chained(first, source.batches):
                raise_if_stopped()
                recorder = _step(factory, recorder, unrecorded(batch, recorded), on_chunks, lease_seconds)
        except SourceError as error:  # a listing that fails half-way: what was recorded still runs
            failure = error
        recorder = _step(factory, recorder, None, on_chunks, lease_seconds)
    except BaseException:  # Ctrl-C or an error: say so now rather than when the recording lease expires
        interrupt_job(factory, recorder.job_id, JobStatus.RECORDING)
        raise
    if failure is not None:
        raise SourceError(f"{failure} Job {recorder.job_id} annotates the {recorder.total} files recorded before "
                          "that; submit again for the rest (what is done is skipped).")
    result = recorder.result()
    return result if resumed is None else NewJob(result.job_id, result.total, result.skipped, result.failed,
                                                 result.chunks, resumed)
