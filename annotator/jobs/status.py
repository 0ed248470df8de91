"""Job status read from the database, so any shell can watch work that any worker does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator.errors import UnknownJobError
from annotator.faces.modes import FaceOptions
from db.models import Face, ImageStatus, Job, JobImage

IN_PROGRESS = ("recording", "running")


@dataclass(frozen=True)
class JobSummary:
    """Counts and timings of one job."""

    id: int
    source: str
    status: str
    face_mode: str
    total: int
    done: int
    skipped: int
    failed: int
    pending: int
    faces: int  # faces found in the done images (one per image for aligned portraits)
    created_at: datetime
    finished_at: datetime | None

    @property
    def elapsed_seconds(self) -> float:
        """Seconds from submission to finish (or to now while running)."""
        end = self.finished_at or datetime.now(timezone.utc)
        start = self.created_at
        if start.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC.
            start, end = start.replace(tzinfo=timezone.utc), end.replace(tzinfo=timezone.utc)
        return max((end - start).total_seconds(), 0.0)


@dataclass(frozen=True)
class JobProgress:
    """What a progress bar needs, in one cheap query."""

    status: str
    total: int
    pending: int

    @property
    def counted(self) -> int:
        """Images no longer pending."""
        return self.total - self.pending

    @property
    def in_progress(self) -> bool:
        """Still being recorded or run: neither finished nor cancelled."""
        return self.status in IN_PROGRESS


def job_progress(session: Session, job_id: int) -> JobProgress:
    """Status, total and pending count of one job, or :class:`UnknownJobError`."""
    pending = (select(func.count()).select_from(JobImage)
               .where(JobImage.job_id == job_id, JobImage.status == ImageStatus.PENDING.value).scalar_subquery())
    row = session.execute(select(Job.status, Job.total, pending).where(Job.id == job_id)).one_or_none()
    if row is None:
        raise UnknownJobError(f"No job {job_id}. See `annotate status` for the list of jobs.")
    return JobProgress(*row)


@dataclass(frozen=True)
class FailedImage:
    """An image that could not be annotated, with its reason code."""

    path: str
    reason: str
    detail: str


def _face_count(session: Session, job: Job) -> int:
    method = FaceOptions.from_record(job.face_mode, job.face_options).method
    done = select(JobImage.image_id).where(JobImage.job_id == job.id, JobImage.status == ImageStatus.DONE.value)
    return session.scalar(
        select(func.count()).select_from(Face).where(Face.method == method, Face.image_id.in_(done))) or 0


def _summary(session: Session, job: Job) -> JobSummary:
    query = select(JobImage.status, func.count()).where(JobImage.job_id == job.id).group_by(JobImage.status)
    counts = {status: count for status, count in session.execute(query)}
    return JobSummary(
        id=job.id, source=job.source, status=job.status, face_mode=job.face_mode, total=job.total,
        done=counts.get(ImageStatus.DONE.value, 0), skipped=counts.get(ImageStatus.SKIPPED.value, 0),
        failed=counts.get(ImageStatus.FAILED.value, 0), pending=counts.get(ImageStatus.PENDING.value, 0),
        faces=_face_count(session, job),
        created_at=job.created_at, finished_at=job.finished_at,
    )


def job_summary(session: Session, job_id: int) -> JobSummary:
    """The summary of one job, or :class:`UnknownJobError`."""
    job = session.get(Job, job_id)
    if job is None:
        raise UnknownJobError(f"No job {job_id}. See `annotate status` for the list of jobs.")
    return _summary(session, job)


def recent_jobs(session: Session, limit: int = 20) -> list[JobSummary]:
    """Summaries of the latest ``limit`` jobs, newest first."""
    jobs = session.scalars(select(Job).order_by(Job.id.desc()).limit(limit))
    return [_summary(session, job) for job in jobs]


def failed_images(session: Session, job_id: int) -> list[FailedImage]:
    """The failed images of a job with their reason codes, by path."""
    rows = session.execute(
        select(JobImage.path, JobImage.reason, JobImage.detail)
        .where(JobImage.job_id == job_id, JobImage.status == ImageStatus.FAILED.value)
        .order_by(JobImage.path)
    )
    return [FailedImage(path, reason or "", detail or "") for path, reason, detail in rows]
