"""Finishing a job on real PostgreSQL when its last two chunks commit at the same moment."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from annotator.jobs import pipeline
from annotator.settings import Settings
from db.models import Job
from tests.services.helpers import assert_exactly_once, write_photos

pytestmark = pytest.mark.services


def test_two_chunks_committing_together_finish_the_job_once(factory, tmp_path, monkeypatch):
    from annotator.faces.modes import FaceMode, FaceOptions
    from db.session import transaction
    from tests.recorded_jobs import create_job

    write_photos(tmp_path / "photos", 8)
    with transaction(factory) as session:
        job = create_job(session, tmp_path / "photos", chunk_size=4, faces=FaceOptions(FaceMode.ALIGNED))
    assert job.chunks == [0, 1]
    # Each chunk transaction has written its images and checked whether the job is complete; both then wait
    # at a barrier so that they commit together. Unserialised, each check saw the other's images pending and
    # the job stayed running for ever. Serialised, the second check waits for the first transaction, which
    # therefore commits alone once the barrier times out, and then sees every image settled.
    barrier = threading.Barrier(2, timeout=10)
    real_finish = pipeline.finish_job_if_complete
    flipped = []

    def then_commit_together(session, job_id):  # type: ignore[no-untyped-def]
        flipped.append(real_finish(session, job_id))
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return flipped[-1]

    monkeypatch.setattr(pipeline, "finish_job_if_complete", then_commit_together)
    settings = Settings.from_env()
    errors = []

    def run(chunk: int) -> None:
        try:
            pipeline.process_chunk(factory, settings, job.job_id, chunk)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in job.chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    with factory() as session:
        assert session.scalar(select(Job.status).where(Job.id == job.job_id)) == "finished"
    assert sorted(flipped) == [False, True]  # exactly one transaction finished it
    assert_exactly_once(factory, 8)
