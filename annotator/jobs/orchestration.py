"""Run a job's chunks: record then run them here (no broker), or queue each chunk as soon as it is recorded.

The CLI, ``reannotate``, ``jobs retry`` and the tests all go through these functions; only the progress display is
theirs (``on_progress`` receives a :class:`~annotator.jobs.status.JobProgress` whenever the counts may have moved).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from annotator.faces.modes import FaceOptions
from annotator.jobs.creation import NewJob, create_job, open_source, record_job
from annotator.jobs.status import JobProgress, job_progress
from annotator.settings import DEFAULT_QUEUE, Settings
from db.session import transaction

PROGRESS_INTERVAL = 0.1  # seconds between two polls of a job's counts: one cheap query each

OnProgress = Callable[[JobProgress], None]


def _chunk_task(settings: Settings) -> Any:
    # Celery is imported only by the commands that send work, never by `annotate --help`.
    from worker.app import create_app

    return create_app(settings).tasks["annotate.chunk"]


def read_progress(factory: sessionmaker[Session], job_id: int) -> JobProgress:
    """The job's status and counts, read in a session of its own."""
    with factory() as session:
        return job_progress(session, job_id)


def run_chunks(settings: Settings, factory: sessionmaker[Session], job_id: int, chunks: list[int], *,
               queue: str = DEFAULT_QUEUE, on_progress: OnProgress | None = None) -> None:
    """Without a broker run the chunks here, one by one; with one, send a task per chunk to ``queue``."""
    task = _chunk_task(settings)
    if not settings.eager:
        for chunk in chunks:
            task.apply_async((job_id, chunk), queue=queue)
        return
    if on_progress is not None:
        on_progress(read_progress(factory, job_id))
    for chunk in chunks:
        task.delay(job_id, chunk)
        if on_progress is not None:
            on_progress(read_progress(factory, job_id))


def submit_source(settings: Settings, factory: sessionmaker[Session], source: str | Path | None, *,
                  chunk_size: int, from_list: str | Path | None = None,
                  faces: FaceOptions, queue: str = DEFAULT_QUEUE, on_progress: OnProgress | None = None) -> NewJob:
    """Record a job for every image under ``source`` (a folder or a URI prefix such as ``s3://bucket/prefix``) or
    of the list ``from_list``, and run or queue its chunks.

    Without a broker the whole job is recorded first, then run here. With one, each chunk is queued as soon as
    it is committed, so workers start on a large folder while the rest is still being recorded.
    """
    images = open_source(source, from_list=from_list, batch_size=chunk_size)
    if settings.eager:
        with transaction(factory) as session:
            job = create_job(session, images, chunk_size=chunk_size, faces=faces)
        if job.chunks:
            run_chunks(settings, factory, job.job_id, job.chunks, on_progress=on_progress)
        return job
    task = _chunk_task(settings)

    def enqueue(job_id: int, chunks: list[int]) -> None:
        for chunk in chunks:
            task.apply_async((job_id, chunk), queue=queue)

    return record_job(factory, images, chunk_size=chunk_size, faces=faces, on_chunks=enqueue)


def wait_for(factory: sessionmaker[Session], job_id: int, on_progress: OnProgress | None = None,
             interval: float = PROGRESS_INTERVAL) -> JobProgress:
    """Poll the job until it is no longer recording or running (finished or cancelled); its last progress."""
    while True:
        progress = read_progress(factory, job_id)
        if on_progress is not None:
            on_progress(progress)
        if not progress.in_progress:
            return progress
        time.sleep(interval)
