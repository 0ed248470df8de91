"""Real Redis, real PostgreSQL, real worker processes: shared jobs, killed workers, dropped connections."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import func, select

from annotator.cli import main
from annotator.settings import Settings
from db.models import ChunkStatus, Job, JobChunk, Prediction
from db.session import make_engine, make_session_factory

pytestmark = pytest.mark.services

ATTRIBUTES = 4


def write_photos(folder, count, side=120, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"p{index:04d}.png")


@pytest.fixture
def factory(service_env):
    from tests.conftest import register_untrained_chain

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    from db.migrate import upgrade

    upgrade(engine)
    factory = make_session_factory(engine)
    register_untrained_chain(factory, settings)
    yield factory
    engine.dispose()


def submit(folder, chunk_size):
    result = CliRunner().invoke(main, ["submit", str(folder), "--faces", "aligned", "--chunk-size", str(chunk_size)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def wait_finished(factory, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with factory() as session:
            job = session.scalar(select(Job).order_by(Job.id.desc()))
            if job is not None and job.status == "finished":
                return job
        time.sleep(0.3)
    raise AssertionError("the job did not finish in time")


def assert_exactly_once(factory, images):
    with factory() as session:
        total = session.scalar(select(func.count()).select_from(Prediction))
        distinct = session.scalar(select(func.count()).select_from(
            select(Prediction.face_id, Prediction.attribute).distinct().subquery()))
    assert total == distinct == images * ATTRIBUTES


def test_two_workers_share_one_job(factory, workers, tmp_path):
    write_photos(tmp_path / "photos", 300)
    workers.start("w1")
    workers.start("w2")
    submit(tmp_path / "photos", chunk_size=10)
    job = wait_finished(factory)
    assert_exactly_once(factory, 300)
    with factory() as session:
        chunks = session.scalars(select(JobChunk).where(JobChunk.job_id == job.id)).all()
    assert len(chunks) == 30 and all(c.status == ChunkStatus.DONE.value for c in chunks)
    assert len({c.worker for c in chunks}) == 2, "both workers should have taken chunks"
    status = CliRunner().invoke(main, ["status", str(job.id)]).output
    assert "done 300" in status and "pending 0" in status


def test_a_worker_killed_mid_chunk_loses_and_duplicates_nothing(factory, workers, tmp_path):
    # Large PNGs make each chunk take a few seconds, so the kill lands inside one.
    write_photos(tmp_path / "photos", 120, side=900)
    victim = workers.start("victim")
    submit(tmp_path / "photos", chunk_size=40)
    deadline = time.monotonic() + 60
    while True:
        with factory() as session:
            running = session.scalar(select(func.count()).select_from(JobChunk)
                                     .where(JobChunk.status == ChunkStatus.RUNNING.value))
        if running:
            break
        assert time.monotonic() < deadline, "no chunk started"
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    with factory() as session:
        interrupted = session.scalar(select(func.count()).select_from(JobChunk)
                                     .where(JobChunk.status == ChunkStatus.RUNNING.value))
    # A worker keeps two chunks in flight, so the kill interrupts one or both.
    assert interrupted in (1, 2), "the kill should have interrupted a chunk"
    workers.start("replacement")
    wait_finished(factory)
    assert_exactly_once(factory, 120)
    with factory() as session:
        attempts = session.scalars(select(JobChunk.attempts)).all()
    assert sorted(attempts, reverse=True)[:interrupted] == [2] * interrupted and max(attempts) == 2


def test_a_dropped_database_connection_is_retried(factory, workers, service_env, tmp_path):
    write_photos(tmp_path / "photos", 200, side=600)
    workers.start("w1")
    admin_url = os.environ.get("ANNOTATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    database = service_env["ANNOTATE_DATABASE_URL"].rsplit("/", 1)[1]
    job_done = threading.Event()
    terminated = []

    def drop_worker_connections():
        # Only connections in the middle of work: an idle pooled one would just be replaced by pre-ping.
        with psycopg.connect(admin_url, autocommit=True) as admin:
            deadline = time.monotonic() + 120
            while len(terminated) < 3 and not job_done.is_set() and time.monotonic() < deadline:
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND application_name LIKE 'annotate worker%%' AND state IN ('active', 'idle in transaction')",
                    (database,)).fetchall()
                terminated.extend(row for row in rows if row[0])
                time.sleep(0.01)

    dropper = threading.Thread(target=drop_worker_connections, daemon=True)
    dropper.start()
    submit(tmp_path / "photos", chunk_size=20)
    try:
        wait_finished(factory)
    finally:
        job_done.set()
        dropper.join()
    assert terminated, "no worker connection was dropped during the job"
    assert "Retry in" in workers.log("w1")
    assert_exactly_once(factory, 200)
