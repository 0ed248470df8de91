"""Real Redis, real PostgreSQL, real worker processes: shared jobs and dropped connections (faults: test_faults)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from annotator.cli import main
from db.models import ChunkStatus, Job, JobChunk
from tests.services.helpers import assert_exactly_once, write_photos

pytestmark = pytest.mark.services


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


def test_two_workers_share_one_job(factory, workers, tmp_path):
    write_photos(tmp_path / "photos", 300)
    workers.start("w1", "w2")
    submit(tmp_path / "photos", chunk_size=10)
    job = wait_finished(factory)
    assert_exactly_once(factory, 300)
    with factory() as session:
        chunks = session.scalars(select(JobChunk).where(JobChunk.job_id == job.id)).all()
    assert len(chunks) == 30 and all(c.status == ChunkStatus.DONE.value for c in chunks)
    assert len({c.worker for c in chunks}) == 2, "both workers should have taken chunks"
    status = CliRunner().invoke(main, ["status", str(job.id)]).output
    assert "done 300" in status and "pending 0" in status


def test_a_dropped_database_connection_is_retried(factory, workers, service_env, postgres_cluster, tmp_path):
    write_photos(tmp_path / "photos", 200, side=600)
    workers.start("w1")
    admin_url = postgres_cluster.url()
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
