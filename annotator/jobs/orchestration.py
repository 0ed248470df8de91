"""Run a job's chunks: record then run them here (no broker), or queue each chunk as soon as it is recorded.

The CLI, ``reannotate``, ``jobs retry`` and the tests all go through these functions; only the progress display is
theirs (``on_progress`` receives a :class:`~annotator.jobs.status.JobProgress` whenever the counts may have moved).
While it waits, a submit sweeps like a worker does (:mod:`annotator.jobs.recovery`), so a job heals even when
every worker that could have noticed the fault is the one that failed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from annotator.errors import SourceError
from annotator.faces.modes import FaceOptions
from annotator.jobs.creation import NewJob
from annotator.jobs.inputs import ImageSource, open_source
from annotator.jobs.recording import interrupt_job, record_job
from annotator.jobs.recovery import SweepReport, sweep
from annotator.jobs.status import JobProgress, job_progress
from annotator.settings import DEFAULT_QUEUE, Settings
from annotator.stopping import raise_if_stopped
from db.models import JobStatus
from db.session import is_disconnect, outlasting_restarts

PROGRESS_INTERVAL = 0.1  # seconds between two polls of a job's counts: one cheap query each

OnProgress = Callable[[JobProgress], None]
log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _broker(settings: Settings) -> Any:
    from worker.app import create_app
    from worker.supervision import CeleryBroker

    return CeleryBroker(create_app(settings))


def check_broker(settings: Settings) -> None:
    """Raise :class:`~annotator.errors.BrokerUnreachableError` within seconds if the broker does not answer."""
    from worker.app import check_broker as check
    from worker.app import create_app

    check(create_app(settings))


def sweep_once(settings: Settings, factory: sessionmaker[Session]) -> SweepReport:
    """Heal what can be healed now (expired leases, lost messages, interrupted submits, complete jobs)."""
    return sweep(factory, settings, None if settings.eager else _broker(settings))


def read_progress(factory: sessionmaker[Session], job_id: int) -> JobProgress:
    """The job's status and counts, read in a session of its own."""
    with factory() as session:
        return job_progress(session, job_id)


def run_chunks(settings: Settings, factory: sessionmaker[Session], job_id: int, chunks: list[int], *,
               queue: str = DEFAULT_QUEUE, on_progress: OnProgress | None = None) -> None:
    """Without a broker run the chunks here, one by one; with one, send a task per chunk to ``queue``."""
    if not settings.eager:
        broker = _broker(settings)
        for chunk in chunks:
            broker.send(job_id, chunk, queue)
        return
    if on_progress is not None:
        on_progress(read_progress(factory, job_id))
    for chunk in chunks:
        raise_if_stopped()
        _run_chunk_here(job_id, chunk)
        if on_progress is not None:
            _show_progress(factory, job_id, on_progress)


def _run_chunk_here(job_id: int, chunk: int) -> None:
    """Run one chunk in this process as a worker runs its task. A database that goes away (restarted, failing
    over) is waited for, about a minute, and the chunk tried again under the same lease."""
    from worker.tasks import annotate_chunk_as

    owner = uuid.uuid4().hex
    outlasting_restarts(lambda _: annotate_chunk_as(owner, job_id, chunk), f"running chunk {chunk} of job {job_id}")


def _show_progress(factory: sessionmaker[Session], job_id: int, on_progress: OnProgress) -> None:
    """Progress as the database has it; none while it is away (the next chunk's will do)."""
    try:
        progress = read_progress(factory, job_id)
    except DBAPIError as error:
        if not is_disconnect(error):
            raise
        return
    on_progress(progress)


def submit_source(settings: Settings, factory: sessionmaker[Session], source: str | Path | None, *,
                  chunk_size: int, from_list: str | Path | None = None,
                  faces: FaceOptions, queue: str = DEFAULT_QUEUE, on_progress: OnProgress | None = None) -> NewJob:
    """Record a job for every image under ``source`` (a folder or a URI prefix such as ``s3://bucket/prefix``) or
    of the list ``from_list``, and run or queue its chunks.

    Without a broker the job is recorded, then run here. With one, each chunk is queued as soon as it is
    committed, so workers start on a large folder while the rest is still being recorded. Either way a submit
    that is stopped leaves a job that the same submit resumes.
    """
    images = open_source(source, from_list=from_list, batch_size=chunk_size)
    if settings.eager:
        return _record_and_run_here(settings, factory, images, chunk_size=chunk_size, faces=faces, queue=queue,
                                    on_progress=on_progress)
    check_broker(settings)  # before anything is recorded
    broker = _broker(settings)

    def enqueue(job_id: int, chunks: list[int]) -> None:
        for chunk in chunks:
            broker.send(job_id, chunk, queue)

    return record_job(factory, images, chunk_size=chunk_size, faces=faces, on_chunks=enqueue, queue=queue,
                      lease_seconds=settings.lease_seconds)


def _record_and_run_here(settings: Settings, factory: sessionmaker[Session], images: ImageSource, *,
                         chunk_size: int, faces: FaceOptions, queue: str, on_progress: OnProgress | None) -> NewJob:
    """Record the job, then run its chunks in this process (no broker).

    A listing that fails half-way still runs what was recorded before the error is raised. Stopped while the
    chunks run (Ctrl-C, SIGTERM, an error), the job is left ``interrupted`` for the same submit to resume."""
    recorded: dict[int, list[int]] = {}

    def collect(job_id: int, chunks: list[int]) -> None:
        recorded.setdefault(job_id, []).extend(chunks)

    try:
        job = record_job(factory, images, chunk_size=chunk_size, faces=faces, on_chunks=collect, queue=queue,
                         lease_seconds=settings.lease_seconds, runs_here=True)
    except SourceError:
        for job_id, chunks in recorded.items():
            _run_here(settings, factory, job_id, chunks, on_progress)
        raise
    _run_here(settings, factory, job.job_id, recorded.get(job.job_id, []), on_progress)
    return job


def _run_here(settings: Settings, factory: sessionmaker[Session], job_id: int, chunks: list[int],
              on_progress: OnProgress | None) -> None:
    if not chunks:
        return
    try:
        run_chunks(settings, factory, job_id, chunks, on_progress=on_progress)
    except BaseException:
        interrupt_job(factory, job_id, JobStatus.RUNNING)
        raise


def wait_for(factory: sessionmaker[Session], job_id: int, on_progress: OnProgress | None = None,
             interval: float = PROGRESS_INTERVAL, settings: Settings | None = None) -> JobProgress:
    """Poll the job until it is no longer recording or running (finished or cancelled); its last progress.

    With ``settings`` of a broker it also sweeps every ``heartbeat_seconds``. A database that goes away for a
    while (restarted, failing over) is waited for, not an error, from the first poll on: the job was recorded, so
    the database was there a moment ago. Any other failure of the first poll is raised.
    """
    last_sweep = time.monotonic()
    progress = None
    while True:
        raise_if_stopped()
        try:
            progress = read_progress(factory, job_id)
            if settings is not None and not settings.eager and \
                    time.monotonic() - last_sweep >= settings.heartbeat_seconds:
                last_sweep = time.monotonic()
                sweep_once(settings, factory)
        except DBAPIError as error:
            if progress is None and not is_disconnect(error):
                raise
            log.warning("lost the database while waiting for job %s; trying again", job_id)
            time.sleep(1)
            continue
        if on_progress is not None:
            on_progress(progress)
        if not progress.in_progress:
            return progress
        time.sleep(interval)
