"""What a job is made of: its row, its members (hashed images, finished work skipped) and its chunks, recorded
batch by batch by a :class:`Recorder`. Recording a whole source, with resume after an interrupted submit, is in
``recording``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from annotator.faces.modes import FaceOptions
from annotator.images.discovery import Discovered, Rejected
from annotator.jobs.inputs import ImageSource
from annotator.jobs.pipeline import finish_job_if_complete
from annotator.jobs.staleness import ChainVersions, already_annotated
from annotator.models.store import active_chain_versions
from annotator.settings import DEFAULT_QUEUE
from db.models import (
    Image,
    ImageStatus,
    Job,
    JobChunk,
    JobImage,
    JobStatus,
    ModelVersion,
    utcnow,
)
from db.queries import QUERY_BATCH, batched, insert_ignoring_conflicts

RECORDING_STATES = (JobStatus.RECORDING.value, JobStatus.INTERRUPTED.value)


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


def _rejected(job_id: int, rejected: Rejected) -> dict[str, Any]:
    path, failure = rejected
    return {"job_id": job_id, "image_id": None, "path": str(path), "chunk": None,
            "status": ImageStatus.FAILED.value, "reason": failure.reason.value, "detail": failure.detail}


class Recorder:
    """Turns a job's found images into members and chunks, batch by batch; every chunk it returns is complete."""

    def __init__(self, job_id: int, chunk_size: int, chain: ChainVersions, method: str, expected: int = 0) -> None:
        self.job_id, self.chunk_size, self.chain, self.method = job_id, chunk_size, chain, method
        self.expected = expected  # files the source holds, when it said so before its first batch
        self.seen: set[int] = set()
        self.pending = self.skipped = self.failed = self.chunks = self.total = 0

    @classmethod
    def resume(cls, session: Session, job: Job, chain: ChainVersions, method: str) -> tuple[Recorder, set[str]]:
        """A recorder that goes on where an interrupted one stopped, and the paths it had recorded."""
        recorder = cls(job.id, job.chunk_size, chain, method, expected=job.total)
        paths = set()
        rows = session.execute(select(JobImage.path, JobImage.image_id, JobImage.chunk, JobImage.status)
                               .where(JobImage.job_id == job.id))
        for path, image_id, chunk, status in rows:
            paths.add(path)
            recorder.total += 1
            if image_id is not None:
                recorder.seen.add(image_id)
            recorder.pending += chunk is not None
            recorder.skipped += status == ImageStatus.SKIPPED.value and chunk is None
            recorder.failed += status == ImageStatus.FAILED.value and image_id is None
        recorder.chunks = session.scalar(select(func.count()).select_from(JobChunk)
                                         .where(JobChunk.job_id == job.id)) or 0
        return recorder, paths

    def add(self, session: Session, batch: Discovered) -> list[int]:
        """Record members for a batch of found and rejected files; returns the chunks that this batch completed."""
        image_ids = _image_ids(session, batch.found)
        finished = already_annotated(session, list(set(image_ids.values())), self.chain, self.method)
        members = []
        for item in batch.found:
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
        members += [_rejected(self.job_id, rejected) for rejected in batch.failures]
        self.skipped += sum(m["status"] == ImageStatus.SKIPPED.value for m in members)
        self.failed += len(batch.failures)
        self.total += len(members)
        insert_ignoring_conflicts(session, JobImage, members)
        session.execute(update(Job).where(Job.id == self.job_id).values(total=max(self.total, self.expected)))
        return self._close_chunks(session, self.pending // self.chunk_size)

    def renew(self, session: Session, lease_seconds: int) -> None:
        """Extend the recording lease (and take the job back from ``interrupted`` if a sweep got there first)."""
        session.execute(update(Job).where(Job.id == self.job_id, Job.status.in_(RECORDING_STATES))
                        .values(status=JobStatus.RECORDING.value,
                                lease_expires_at=utcnow() + timedelta(seconds=lease_seconds)))

    def finish(self, session: Session) -> list[int]:
        """Record the last partial chunk, then let the job run (and finish)."""
        ready = self._close_chunks(session, -(-self.pending // self.chunk_size))
        # Compare-and-set: a job cancelled while it was being recorded stays cancelled, and so do the images
        # recorded after the cancel.
        started = session.execute(update(Job).where(Job.id == self.job_id, Job.status.in_(RECORDING_STATES))
                                  .values(status=JobStatus.RUNNING.value, chunks=self.chunks, total=self.total,
                                          lease_expires_at=None))
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

    def result(self) -> NewJob:
        """What was recorded."""
        return NewJob(self.job_id, self.total, self.skipped, self.failed, list(range(self.chunks)))


def start_recording(session: Session, source: ImageSource, chunk_size: int, faces: FaceOptions, *,
                    queue: str = DEFAULT_QUEUE) -> Recorder:
    """A new job of the active chain, ``recording`` until its recorder finishes."""
    versions = active_chain_versions(session)
    job = new_job(session, source.name, faces, versions, chunk_size=chunk_size, total=source.size or 0,
                  status=JobStatus.RECORDING, queue=queue)
    return Recorder(job.id, chunk_size, ChainVersions.of(versions), faces.method, expected=source.size or 0)
