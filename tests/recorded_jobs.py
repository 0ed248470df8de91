"""Jobs recorded in one transaction, for tests that need a job without running a submit."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from annotator.faces.modes import FaceOptions
from annotator.jobs.creation import NewJob, start_recording
from annotator.jobs.inputs import ImageSource, as_source, first_batch
from annotator.settings import DEFAULT_QUEUE


def create_job(session: Session, source: ImageSource | str | Path, *, chunk_size: int, faces: FaceOptions,
               queue: str = DEFAULT_QUEUE) -> NewJob:
    """Record a job for every image of ``source`` (a folder, a URI prefix or an opened source) in ``session``,
    finding faces as ``faces`` says; nothing runs yet."""
    source = as_source(source, chunk_size)
    first = first_batch(source)
    recorder = start_recording(session, source, chunk_size, faces, queue=queue)
    recorder.add(session, first)
    for batch in source.batches:
        recorder.add(session, batch)
    recorder.finish(session)
    return recorder.result()
