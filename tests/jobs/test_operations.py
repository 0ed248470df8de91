from datetime import timedelta

import pytest
from sqlalchemy import select, update

from annotator.errors import AnnotateError
from annotator.faces.modes import ALIGNED_FACES
from annotator.jobs.operations import cancel_job, chunks_to_retry, stalled_chunks
from annotator.jobs.pipeline import process_chunk
from annotator.jobs.status import job_summary
from db.models import ChunkStatus, JobChunk, utcnow
from db.session import transaction
from tests.conftest import write_faces
from tests.recorded_jobs import create_job


def new_job(factory, folder, chunk_size=2):
    with transaction(factory) as session:
        return create_job(session, folder, chunk_size=chunk_size, faces=ALIGNED_FACES)


def test_cancelled_chunks_do_no_work(factory, settings, untrained_chain, tmp_path):
    write_faces(tmp_path / "photos", 5)
    job = new_job(factory, tmp_path / "photos")
    process_chunk(factory, settings, job.job_id, 0)
    with transaction(factory) as session:
        assert cancel_job(session, job.job_id) == 3
    assert process_chunk(factory, settings, job.job_id, 1).done == 0
    with factory() as session:
        summary = job_summary(session, job.job_id)
        assert (summary.status, summary.done, summary.skipped, summary.pending) == ("cancelled", 2, 3, 0)
        with pytest.raises(AnnotateError, match="only a running job"):
            cancel_job(session, job.job_id)


def test_a_chunk_whose_lease_expired_is_visible_and_retried(factory, settings, untrained_chain, tmp_path):
    write_faces(tmp_path / "photos", 4)
    job = new_job(factory, tmp_path / "photos")

    def taken(lease_left):  # a worker took chunk 1; its lease ends lease_left from now
        with transaction(factory) as session:
            session.execute(update(JobChunk).where(JobChunk.chunk == 1).values(
                status=ChunkStatus.RUNNING.value, started_at=utcnow() - timedelta(minutes=5), worker="gone:1",
                attempts=1, lease_owner="task-1", lease_expires_at=utcnow() + lease_left))

    taken(timedelta(seconds=30))
    process_chunk(factory, settings, job.job_id, 0)
    with factory() as session:
        assert stalled_chunks(session, job.job_id) == []  # still heart-beating
    taken(-timedelta(seconds=1))
    with factory() as session:
        stalled = stalled_chunks(session, job.job_id)
        assert [(c.chunk, c.worker) for c in stalled] == [(1, "gone:1")]
    with transaction(factory) as session:
        assert chunks_to_retry(session, job.job_id) == [1]
    process_chunk(factory, settings, job.job_id, 1)
    with factory() as session:
        assert job_summary(session, job.job_id).status == "finished"
        chunk = session.scalar(select(JobChunk).where(JobChunk.chunk == 1))
        assert (chunk.status, chunk.attempts) == ("done", 2)


def test_retry_resets_failed_images(factory, settings, untrained_chain, tmp_path):
    folder = tmp_path / "photos"
    paths = write_faces(folder, 3)
    job = new_job(factory, folder, chunk_size=10)
    paths[2].rename(tmp_path / "away.png")  # the share was briefly unreachable while the chunk ran
    process_chunk(factory, settings, job.job_id, 0)
    with factory() as session:
        assert job_summary(session, job.job_id).failed == 1
    (tmp_path / "away.png").rename(paths[2])
    with transaction(factory) as session:
        assert chunks_to_retry(session, job.job_id) == [0]
    process_chunk(factory, settings, job.job_id, 0)
    with factory() as session:
        summary = job_summary(session, job.job_id)
    assert (summary.status, summary.done, summary.failed) == ("finished", 3, 0)
