"""Create a job from a folder, an object store prefix or a list: discover and hash images, skip finished work,
split the rest into chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from annotator.errors import SourceError
from annotator.faces.modes import FaceOptions
from annotator.images.discovery import Discovered, Rejected, discover, discover_listed, discover_objects
from annotator.images.lists import read_list
from annotator.images.sources import is_uri, normalised
from annotator.jobs.pipeline import finish_job_if_complete
from annotator.jobs.staleness import ChainVersions
from annotator.models.store import active_chain_versions
from db.models import Face, Image, ImageStatus, Job, JobChunk, JobImage, JobStatus, ModelVersion, Prediction
from db.queries import QUERY_BATCH, batched, insert_ignoring_conflicts
from db.session import transaction


@dataclass(frozen=True)
class NewJob:
    """A recorded job and the chunks that still need a worker."""

    job_id: int
    total: int
    skipped: int
    failed: int
    chunks: list[int]


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
            chunk_size: int, total: int, status: JobStatus = JobStatus.RUNNING) -> Job:
    """Record a job of the ``versions`` chain (its members come with :func:`add_members` or a recorder)."""
    job = Job(source=source, face_mode=faces.mode.value, face_options=faces.to_record(),
              chain=[v.name for v in versions], model_version_ids=[v.id for v in versions],
              chunk_size=chunk_size, total=total, status=status.value)
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
    rows = [{"job_id": job_id, "chunk": chunk, "status": "queued", "attempts": 0} for chunk in chunks]
    if rows:
        session.execute(JobChunk.__table__.insert(), rows)


def _checked_source(source: Path) -> Path:
    source = source.expanduser().resolve()
    if not source.exists():
        raise SourceError(f"Folder not found: {source}.")
    if not source.is_dir():
        raise SourceError(f"Not a folder: {source}. Submit the folder that holds the images.")
    return source


@dataclass(frozen=True)
class ImageSource:
    """What a job is submitted from, and its images in batches (discovered as they are taken)."""

    name: str  # recorded as the job's source
    batches: Iterator[Discovered]
    nothing_found: str  # the error when no batch holds anything


def _folder_batches(root: Path, batch_size: int) -> Iterator[Discovered]:
    found, failures = discover(root)  # hashed up front: a local disk answers fast, and the order stays stable
    for start in range(0, len(found), batch_size):
        yield Discovered(found[start : start + batch_size])
    if failures:
        yield Discovered(failures=list(failures))


def open_source(source: str | Path | None = None, *, from_list: str | Path | None = None,
                batch_size: int) -> ImageSource:
    """The images of a folder, a URI prefix (``s3://bucket/prefix``, ``gs://...``) or a list of paths and URIs.

    A folder is checked now; a prefix is listed and a list read only when the first batch is taken.
    """
    if (source is None) == (from_list is None):
        raise SourceError("Give one source: a folder, a URI such as s3://bucket/prefix, or --from-list FILE.")
    if from_list is not None:
        where = str(from_list) if is_uri(str(from_list)) else normalised(from_list)

        def listed() -> Iterator[Discovered]:
            yield from discover_listed(read_list(where), batch_size)

        return ImageSource(where, listed(), f"{where} lists no paths or URIs.")
    if is_uri(str(source)):
        uri = normalised(str(source))
        return ImageSource(uri, discover_objects(uri, batch_size),
                           f"No objects found under {uri} (looked under every sub-prefix, by content).")
    root = _checked_source(Path(source))  # type: ignore[arg-type]
    return ImageSource(str(root), _folder_batches(root, batch_size),
                       f"No images found in {root} (looked in every sub-folder, by content).")


class _Recorder:
    """Turns a job's found images into members and chunks, batch by batch; every chunk it returns is complete."""

    def __init__(self, job_id: int, chunk_size: int, chain: ChainVersions, method: str) -> None:
        self.job_id, self.chunk_size, self.chain, self.method = job_id, chunk_size, chain, method
        self.seen: set[int] = set()
        self.pending = self.skipped = self.failed = self.chunks = self.total = 0

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
        session.execute(update(Job).where(Job.id == self.job_id).values(total=self.total))
        return self._close_chunks(session, self.pending // self.chunk_size)

    def finish(self, session: Session) -> list[int]:
        """Record the last partial chunk, then let the job run (and finish)."""
        ready = self._close_chunks(session, -(-self.pending // self.chunk_size))
        # Compare-and-set: a job cancelled while it was being recorded stays cancelled, and so do the images
        # recorded after the cancel.
        started = session.execute(update(Job).where(Job.id == self.job_id, Job.status == JobStatus.RECORDING.value)
                                  .values(status=JobStatus.RUNNING.value, chunks=self.chunks))
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


def _rejected(job_id: int, rejected: Rejected) -> dict[str, Any]:
    path, failure = rejected
    return {"job_id": job_id, "image_id": None, "path": str(path), "chunk": None,
            "status": ImageStatus.FAILED.value, "reason": failure.reason.value, "detail": failure.detail}


def _first_batch(source: ImageSource) -> Discovered:
    """The first batch that holds anything, or :class:`SourceError` when the source holds nothing."""
    for batch in source.batches:
        if batch.found or batch.failures:
            return batch
    raise SourceError(source.nothing_found)


def _start_recording(session: Session, source: ImageSource, chunk_size: int, faces: FaceOptions) -> _Recorder:
    versions = active_chain_versions(session)
    job = new_job(session, source.name, faces, versions, chunk_size=chunk_size, total=0,
                  status=JobStatus.RECORDING)
    return _Recorder(job.id, chunk_size, ChainVersions.of(versions), faces.method)


def _as_source(source: ImageSource | str | Path, chunk_size: int) -> ImageSource:
    return source if isinstance(source, ImageSource) else open_source(source, batch_size=chunk_size)


def create_job(session: Session, source: ImageSource | str | Path, *, chunk_size: int,
               faces: FaceOptions) -> NewJob:
    """Record a job for every image of ``source`` (see :func:`open_source`), finding faces as ``faces`` says;
    nothing runs yet."""
    source = _as_source(source, chunk_size)
    first = _first_batch(source)
    recorder = _start_recording(session, source, chunk_size, faces)
    recorder.add(session, first)
    for batch in source.batches:
        recorder.add(session, batch)
    recorder.finish(session)
    return recorder.result()


def record_job(factory: sessionmaker[Session], source: ImageSource | str | Path, *, chunk_size: int,
               faces: FaceOptions, on_chunks: Callable[[int, list[int]], None]) -> NewJob:
    """Like :func:`create_job`, but committed one batch at a time: ``on_chunks(job_id, chunks)`` gets each
    chunk as soon as it is recorded, so workers start on a large folder (or prefix, listed and hashed page by
    page) while the rest is still recorded.

    Until the last chunk is recorded the job is ``recording`` and cannot finish; if this process dies in
    between, the recorded chunks still run and the job stays ``recording`` until it is cancelled.
    """
    source = _as_source(source, chunk_size)
    first = _first_batch(source)
    with transaction(factory) as session:
        recorder = _start_recording(session, source, chunk_size, faces)
    failure: SourceError | None = None
    try:
        for batch in _chained(first, source.batches):
            with transaction(factory) as session:
                ready = recorder.add(session, batch)
            if ready:
                on_chunks(recorder.job_id, ready)
    except SourceError as error:  # a listing that fails half-way: what was recorded still runs
        failure = error
    with transaction(factory) as session:
        ready = recorder.finish(session)
    if ready:
        on_chunks(recorder.job_id, ready)
    if failure is not None:
        raise SourceError(f"{failure} Job {recorder.job_id} annotates the {recorder.total} files recorded before "
                          "that; submit again for the rest (what is done is skipped).")
    return recorder.result()


def _chained(first: Discovered, rest: Iterator[Discovered]) -> Iterator[Discovered]:
    yield first
    yield from rest
