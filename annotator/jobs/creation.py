"""Create a job from a folder: discover and hash images, skip finished work, split the rest into chunks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from annotator.errors import SourceError
from annotator.faces.modes import FaceOptions
from annotator.images.decoding import DecodeFailure
from annotator.images.discovery import FoundImage, discover
from annotator.jobs.pipeline import finish_job_if_complete
from annotator.jobs.staleness import ChainVersions
from annotator.models.store import active_chain_versions
from annotator.settings import DEFAULT_LEASE_SECONDS, DEFAULT_QUEUE
from db.models import (
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
from db.queries import QUERY_BATCH, batched, insert_ignoring_conflicts
from db.session import is_disconnect, transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewJob:
    """A recorded job and the chunks that still need a worker."""

    job_id: int
    total: int
    skipped: int
    failed: int
    chunks: list[int]
    resumed: int | None = None  # files an interrupted submit had recorded, when this one resumed its job


def _image_ids(session: Session, found: Iterable) -> dict[str, int]:  # type: ignore[type-arg]
    by_sha = {f.sha256: f for f in found}
    insert_ignoring_conflicts(
        session, Image, [{"sha256": f.sha256, "path": str(f.path), "size": f.size, "format": f.format}
                         for f in by_sha.values()]
    )
    ids: dict[str, int] = {}
    for group in batched(list(by_sha), QUERY_BATCH):
        ids.update((sha, image_id) for sha, image_id in session.execute(
            select(Image.sha256, Image.id).where(Image.sha256.in_(group))))
    return ids


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


def new_job(session: Session, source: str, faces: FaceOptions, versions: Sequence[ModelVersion], *,
            chunk_size: int, total: int, status: JobStatus = JobStatus.RUNNING, queue: str = DEFAULT_QUEUE) -> Job:
    """Record a job of the ``versions`` chain whose chunks go to ``queue`` (its members come with
    :func:`add_members` or a recorder)."""
    job = Job(source=source, face_mode=faces.mode.value, face_options=faces.to_record(),
              chain=[v.name for v in versions], model_version_ids=[v.id for v in versions],
              chunk_size=chunk_size, total=total, status=status.value, queue=queue)
    session.add(job)
    session.flush()
    return job


def add_members(session: Session, job: Job, members: list[dict[str, Any]]) -> NewJob:
    """Insert ``job``'s members, split the pending ones into chunks, and finish the job if none is pending."""
    pending = [m for m in members if m["status"] == ImageStatus.PENDING.value]
    for position, member in enumerate(pending):
        member["chunk"] = position // job.chunk_size
    job.chunks = (len(pending) + job.chunk_size - 1) // job.chunk_size
    insert_ignoring_conflicts(session, JobImage, members)
    _add_chunks(session, job.id, range(job.chunks))
    finish_job_if_complete(session, job.id)
    skipped = sum(m["status"] == ImageStatus.SKIPPED.value for m in members)
    failed = sum(m["status"] == ImageStatus.FAILED.value for m in members)
    return NewJob(job.id, job.total, skipped, failed, list(range(job.chunks)))


def _add_chunks(session: Session, job_id: int, chunks: Iterable[int]) -> None:
    now = utcnow()
    rows = [{"job_id": job_id, "chunk": chunk, "status": "queued", "attempts": 0, "queued_at": now} for chunk in chunks]
    if rows:
        session.execute(JobChunk.__table__.insert(), rows)


def _checked_source(source: Path) -> Path:
    source = source.expanduser().resolve()
    if not source.exists():
        raise SourceError(f"Folder not found: {source}.")
    if not source.is_dir():
        raise SourceError(f"Not a folder: {source}. Submit the folder that holds the images.")
    return source


class _Recorder:
    """Turns a job's found images into members and chunks, batch by batch; every chunk it returns is complete."""

    def __init__(self, job_id: int, chunk_size: int, chain: ChainVersions, method: str) -> None:
        self.job_id, self.chunk_size, self.chain, self.method = job_id, chunk_size, chain, method
        self.seen: set[int] = set()
        self.pending = self.skipped = self.failed = self.chunks = 0

    def add(self, session: Session, found: Sequence[FoundImage]) -> list[int]:
        """Record members for ``found``; returns the chunks that this batch completed."""
        image_ids = _image_ids(session, found)
        finished = already_annotated(session, list(set(image_ids.values())), self.chain, self.method)
        members = []
        for item in found:
            image_id = image_ids[item.sha256]
            member = {"job_id": self.job_id, "image_id": image_id, "path": str(item.path), "chunk": None,
                      "status": ImageStatus.SKIPPED.value, "reason": None, "detail": None}
            if image_id in finished:
                member["reason"], member["detail"] = "annotated", "already annotated by the same model versions"
            elif image_id in self.seen:
                member["reason"], member["detail"] = "duplicate", "same content as another file of this job"
            else:
                member["status"], member["chunk"] = ImageStatus.PENDING.value, self.pending // self.chunk_size
                self.pending += 1
            self.seen.add(image_id)
            members.append(member)
        self.skipped += sum(m["status"] == ImageStatus.SKIPPED.value for m in members)
        insert_ignoring_conflicts(session, JobImage, members)
        return self._close_chunks(session, self.pending // self.chunk_size)

    @classmethod
    def resume(cls, session: Session, job: Job, chain: ChainVersions, method: str) -> tuple[_Recorder, set[str]]:
        """A recorder that goes on where an interrupted one stopped, and the paths it had recorded."""
        recorder = cls(job.id, job.chunk_size, chain, method)
        paths = set()
        rows = session.execute(select(JobImage.path, JobImage.image_id, JobImage.chunk, JobImage.status)
                               .where(JobImage.job_id == job.id))
        for path, image_id, chunk, status in rows:
            paths.add(path)
            if image_id is not None:
                recorder.seen.add(image_id)
            recorder.pending += chunk is not None
            recorder.skipped += status == ImageStatus.SKIPPED.value and chunk is None
        recorder.chunks = session.scalar(select(func.count()).select_from(JobChunk)
                                         .where(JobChunk.job_id == job.id)) or 0
        return recorder, paths

    def renew(self, session: Session, lease_seconds: int) -> None:
        """Extend the recording lease (and take the job back from ``interrupted`` if a sweep got there first)."""
        session.execute(update(Job).where(Job.id == self.job_id, Job.status.in_(RECORDING_STATES))
                        .values(status=JobStatus.RECORDING.value,
                                lease_expires_at=utcnow() + timedelta(seconds=lease_seconds)))

    def finish(self, session: Session, failures: Sequence[tuple[Path, DecodeFailure]], total: int | None = None
               ) -> list[int]:
        """Record the rejected files and the last partial chunk, then let the job run (and finish)."""
        insert_ignoring_conflicts(session, JobImage, [
            {"job_id": self.job_id, "image_id": None, "path": str(path), "chunk": None,
             "status": ImageStatus.FAILED.value, "reason": failure.reason.value, "detail": failure.detail}
            for path, failure in failures])
        self.failed = len(failures)
        ready = self._close_chunks(session, -(-self.pending // self.chunk_size))
        # Compare-and-set: a job cancelled while it was being recorded stays cancelled, and so do the images
        # recorded after the cancel.
        values = {"status": JobStatus.RUNNING.value, "chunks": self.chunks, "lease_expires_at": None}
        if total is not None:
            values["total"] = total
        started = session.execute(update(Job).where(Job.id == self.job_id, Job.status.in_(RECORDING_STATES))
                                  .values(**values))
        if started.rowcount == 0:
            session.execute(update(JobImage).where(JobImage.job_id == self.job_id,
                                                   JobImage.status == ImageStatus.PENDING.value)
                            .values(status=ImageStatus.SKIPPED.value, reason="cancelled",
                                    detail="the job was cancelled"))
        finish_job_if_complete(session, self.job_id)
        return ready

    def _close_chunks(self, session: Session, complete: int) -> list[int]:
        ready = list(range(self.chunks, complete))
        _add_chunks(session, self.job_id, ready)
        self.chunks = max(self.chunks, complete)
        return ready

    def result(self, total: int) -> NewJob:
        """What was recorded."""
        return NewJob(self.job_id, total, self.skipped, self.failed, list(range(self.chunks)))


RECORDING_STATES = (JobStatus.RECORDING.value, JobStatus.INTERRUPTED.value)


def _discover(source: Path) -> tuple[list[FoundImage], list[tuple[Path, DecodeFailure]]]:
    found, failures = discover(source)
    if not found and not failures:
        raise SourceError(f"No images found in {source} (looked in every sub-folder, by content).")
    return found, failures


def _start_recording(session: Session, source: Path, chunk_size: int, faces: FaceOptions, total: int, *,
                     queue: str = DEFAULT_QUEUE) -> _Recorder:
    versions = active_chain_versions(session)
    job = new_job(session, str(source), faces, versions, chunk_size=chunk_size, total=total,
                  status=JobStatus.RECORDING, queue=queue)
    return _Recorder(job.id, chunk_size, ChainVersions.of(versions), faces.method)


def create_job(session: Session, source: Path, *, chunk_size: int, faces: FaceOptions,
               queue: str = DEFAULT_QUEUE) -> NewJob:
    """Record a job for every image under ``source``, finding faces as ``faces`` says; nothing runs yet."""
    source = _checked_source(source)
    found, failures = _discover(source)
    recorder = _start_recording(session, source, chunk_size, faces, len(found) + len(failures), queue=queue)
    recorder.add(session, found)
    recorder.finish(session, failures)
    return recorder.result(len(found) + len(failures))


def interrupted_job(session: Session, source: Path, *, chunk_size: int, faces: FaceOptions, queue: str) -> Job | None:
    """The newest job of the same submit (folder, faces, chain versions, chunk size, queue) whose submit died
    while recording it: ``interrupted``, or ``recording`` with an expired lease."""
    versions = [v.id for v in active_chain_versions(session)]
    candidates = session.scalars(select(Job).where(
        Job.source == str(source), Job.face_mode == faces.mode.value, Job.chunk_size == chunk_size,
        Job.queue == queue, Job.status.in_(RECORDING_STATES)).order_by(Job.id.desc()))
    now = utcnow()
    for job in candidates:
        expiry = job.lease_expires_at
        alive = job.status == JobStatus.RECORDING.value and expiry is not None and \
            (expiry if expiry.tzinfo else expiry.replace(tzinfo=now.tzinfo)) > now
        if not alive and job.face_options == faces.to_record() and job.model_version_ids == versions:
            return job
    return None


RECONNECT_PAUSES = (1, 2, 4, 8, 15, 15, 15)
"""Seconds between attempts to go on recording after the database went away (a restart), about a minute."""


def _record_rest(factory: sessionmaker[Session], recorder: _Recorder, found: Sequence[FoundImage],
                 recorded: set[str], failures: Sequence[tuple[Path, DecodeFailure]], total: int,
                 on_chunks: Callable[[int, list[int]], None], lease_seconds: int) -> None:
    for batch in batched([f for f in found if str(f.path) not in recorded], recorder.chunk_size):
        with transaction(factory) as session:
            recorder.renew(session, lease_seconds)
            ready = recorder.add(session, batch)
        if ready:
            on_chunks(recorder.job_id, ready)
    with transaction(factory) as session:
        ready = recorder.finish(session, failures, total)
    if ready:
        on_chunks(recorder.job_id, ready)


def _reconnect(factory: sessionmaker[Session], recorder: _Recorder) -> tuple[_Recorder, set[str]]:
    """The recorder as the database has it (a failed batch was rolled back), to go on from there.

    Raises the database's error while it is still away. A chunk committed but not sent is a lost message,
    which sweeps send again."""
    with transaction(factory) as session:
        job = session.get_one(Job, recorder.job_id)
        return _Recorder.resume(session, job, recorder.chain, recorder.method)


def _record_all(factory: sessionmaker[Session], recorder: _Recorder, found: Sequence[FoundImage],
                recorded: set[str], failures: Sequence[tuple[Path, DecodeFailure]], total: int,
                on_chunks: Callable[[int, list[int]], None], lease_seconds: int) -> _Recorder:
    """Record the files not recorded yet; after the database went away, go on from what it has."""
    lost = False
    for pause in (*RECONNECT_PAUSES, None):
        try:
            if lost:
                recorder, recorded = _reconnect(factory, recorder)
            _record_rest(factory, recorder, found, recorded, failures, total, on_chunks, lease_seconds)
            return recorder
        except DBAPIError as error:
            if pause is None or not is_disconnect(error):
                raise
            log.warning("lost the database while recording job %s; trying again in %s s", recorder.job_id, pause)
            time.sleep(pause)
            lost = True
    return recorder


def _mark_interrupted(factory: sessionmaker[Session], job_id: int) -> None:
    try:
        with transaction(factory) as session:
            session.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.RECORDING.value)
                            .values(status=JobStatus.INTERRUPTED.value, lease_expires_at=None))
    except Exception as error:  # noqa: BLE001 - the database may be what failed; the lease then expires
        log.warning("could not mark job %s interrupted (%s); its recording lease expires instead", job_id, error)


def record_job(factory: sessionmaker[Session], source: Path, *, chunk_size: int, faces: FaceOptions,
               on_chunks: Callable[[int, list[int]], None], queue: str = DEFAULT_QUEUE,
               lease_seconds: int = DEFAULT_LEASE_SECONDS) -> NewJob:
    """Like :func:`create_job`, but committed one chunk at a time: ``on_chunks(job_id, chunks)`` gets each
    chunk as soon as it is recorded, so workers start on a large folder while the rest is still recorded.

    Until the last chunk is recorded the job is ``recording`` and cannot finish; every chunk recorded renews
    its recording lease. If this process dies in between, the recorded chunks still run, a sweep marks the job
    ``interrupted`` once the lease expired (at once after Ctrl-C or an error), and the same submit resumes it:
    the files not recorded yet are added to the same job (its chunks still queued are sent again).
    """
    source = _checked_source(source)
    found, failures = _discover(source)
    total = len(found) + len(failures)
    resumed, waiting = None, []
    with transaction(factory) as session:
        job = interrupted_job(session, source, chunk_size=chunk_size, faces=faces, queue=queue)
        if job is None:
            recorder = _start_recording(session, source, chunk_size, faces, total, queue=queue)
            recorded: set[str] = set()
        else:
            recorder, recorded = _Recorder.resume(session, job, ChainVersions.of(active_chain_versions(session)),
                                                  faces.method)
            resumed = len(recorded)
            waiting = list(session.scalars(select(JobChunk.chunk).where(
                JobChunk.job_id == job.id, JobChunk.status == "queued").order_by(JobChunk.chunk)))
        recorder.renew(session, lease_seconds)
    try:
        if waiting:
            on_chunks(recorder.job_id, waiting)
        recorder = _record_all(factory, recorder, found, recorded, failures, total, on_chunks, lease_seconds)
    except BaseException:  # Ctrl-C or an error: say so now rather than when the recording lease expires
        _mark_interrupted(factory, recorder.job_id)
        raise
    result = recorder.result(total)
    return result if resumed is None else NewJob(result.job_id, total, result.skipped, result.failed, result.chunks,
                                                 resumed)
