"""Leases, sweeps and interrupted submits on SQLite (the real broker and PostgreSQL: tests/services)."""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from annotator.faces.modes import ALIGNED_FACES
from annotator.jobs.leases import LeaseKeeper, finish_chunk, take_chunk
from annotator.jobs.recording import record_job
from annotator.jobs.recovery import ABANDONED, MAX_CHUNK_ATTEMPTS, sweep
from annotator.jobs.status import job_summary
from annotator.stopping import Terminated, stop_like_ctrl_c
from db.models import ChunkStatus, Job, JobChunk, JobImage, utcnow
from db.session import transaction
from tests.conftest import fake_chain, write_faces
from tests.recorded_jobs import create_job


class RecordingBroker:
    """A broker whose queue holds ``waiting`` messages; it records what it was sent."""

    def __init__(self, waiting: int = 0) -> None:
        self.messages, self.sent = waiting, []

    def send(self, job_id: int, chunk: int, queue: str) -> None:
        self.sent.append((job_id, chunk, queue))

    def waiting(self, queue: str) -> int:
        return self.messages


def job_of(factory, tmp_path, files=6, chunk_size=2):
    fake_chain(factory)
    write_faces(tmp_path / "photos", files)
    with transaction(factory) as session:
        return create_job(session, tmp_path / "photos", chunk_size=chunk_size, faces=ALIGNED_FACES, queue="gpu")


def set_chunk(factory, job_id, chunk, **values):
    with transaction(factory) as session:
        session.execute(update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.chunk == chunk).values(**values))


def chunk_row(factory, job_id, chunk):
    with factory() as session:
        return session.scalar(select(JobChunk).where(JobChunk.job_id == job_id, JobChunk.chunk == chunk))


def take(factory, job_id, chunk, owner):
    with transaction(factory) as session:
        return take_chunk(session, job_id, chunk, owner, lease_seconds=60)


def test_a_chunk_is_held_by_one_live_lease_at_a_time(factory, tmp_path):
    job = job_of(factory, tmp_path)
    first = take(factory, job.job_id, 0, "task-a")
    assert first is not None and first.queue == "gpu"
    assert take(factory, job.job_id, 0, "task-b") is None  # a second delivery while the first works
    assert take(factory, job.job_id, 0, "task-a") is not None  # the same delivery retrying keeps it
    assert chunk_row(factory, job.job_id, 0).attempts == 1
    set_chunk(factory, job.job_id, 0, lease_expires_at=utcnow() - timedelta(seconds=1))
    second = take(factory, job.job_id, 0, "task-b")  # the first worker died: its lease expired
    assert second is not None and chunk_row(factory, job.job_id, 0).attempts == 2
    with transaction(factory) as session:
        assert not finish_chunk(session, first)  # the late worker does not close what it no longer holds
        assert finish_chunk(session, second)
    assert take(factory, job.job_id, 0, "task-c") is None  # done chunks are not taken again


def test_a_renewal_that_finds_the_lease_taken_over_stops_the_chunk(factory, tmp_path):
    job = job_of(factory, tmp_path)
    keeper = LeaseKeeper(factory, lease_seconds=60, heartbeat_seconds=10, autostart=False)
    lease = take(factory, job.job_id, 0, "task-a")
    keeper.hold(lease)
    before = chunk_row(factory, job.job_id, 0).lease_expires_at
    keeper.renew_all()
    assert not lease.stopped and chunk_row(factory, job.job_id, 0).lease_expires_at > before
    set_chunk(factory, job.job_id, 0, lease_expires_at=utcnow() - timedelta(seconds=1))
    assert take(factory, job.job_id, 0, "task-b") is not None
    keeper.renew_all()
    assert lease.stopped


def test_a_sweep_requeues_expired_leases_and_resends_lost_messages(factory, settings, tmp_path):
    job = job_of(factory, tmp_path)  # chunks 0, 1, 2 on queue "gpu"
    take(factory, job.job_id, 0, "task-a")
    set_chunk(factory, job.job_id, 0, lease_expires_at=utcnow() - timedelta(seconds=1))
    set_chunk(factory, job.job_id, 1, queued_at=utcnow() - timedelta(seconds=settings.requeue_seconds + 1))
    busy = RecordingBroker(waiting=3)
    report = sweep(factory, settings, busy)
    assert busy.sent == [(job.job_id, 0, "gpu")] and [r.chunk for r in report.expired] == [0]
    assert chunk_row(factory, job.job_id, 0).status == ChunkStatus.QUEUED.value
    # Messages still wait, so chunk 1's may be among them: not sent again until its queue is empty.
    idle = RecordingBroker(waiting=0)
    report = sweep(factory, settings, idle)
    assert idle.sent == [(job.job_id, 1, "gpu")]  # chunk 0 was just sent, chunk 2 was sent recently
    assert sweep(factory, settings, idle).resent == []  # and not again at the next sweep


def test_a_chunk_no_worker_can_finish_is_abandoned_and_the_job_ends(factory, settings, tmp_path):
    job = job_of(factory, tmp_path, files=2)
    take(factory, job.job_id, 0, "task-a")
    set_chunk(factory, job.job_id, 0, attempts=MAX_CHUNK_ATTEMPTS, lease_expires_at=utcnow() - timedelta(seconds=1))
    broker = RecordingBroker()
    report = sweep(factory, settings, broker)
    assert [r.chunk for r in report.abandoned] == [0] and broker.sent == []
    with factory() as session:
        summary = job_summary(session, job.job_id)
        reasons = set(session.scalars(select(JobImage.reason).where(JobImage.job_id == job.job_id)))
    assert (summary.status, summary.failed, reasons) == ("finished", 2, {ABANDONED})


def test_a_sweep_finishes_a_job_with_nothing_pending(factory, settings, tmp_path):
    job = job_of(factory, tmp_path, files=2)
    with transaction(factory) as session:
        session.execute(update(JobImage).values(status="done"))
    assert sweep(factory, settings, None).finished == [job.job_id]
    assert sweep(factory, settings, None).finished == []


class Killed(BaseException):
    """The submit process dying in the middle of recording."""


def test_an_interrupted_submit_is_marked_and_resumed_by_the_same_submit(factory, settings, tmp_path):
    fake_chain(factory)
    write_faces(tmp_path / "photos", 9)
    sent: list[int] = []

    def die_after_first_chunk(job_id, chunks):
        sent.extend(chunks)
        raise Killed

    with pytest.raises(Killed):
        record_job(factory, tmp_path / "photos", chunk_size=2, faces=ALIGNED_FACES, on_chunks=die_after_first_chunk)
    with factory() as session:
        job = session.scalar(select(Job))
    assert job.status == "interrupted" and sent == [0]
    status = CliRunner().invoke(_main(), ["status", str(job.id)])
    assert "interrupted: the submit recording this job stopped after 2 of 9 files" in status.output

    resumed = record_job(factory, tmp_path / "photos", chunk_size=2, faces=ALIGNED_FACES,
                         on_chunks=lambda job_id, chunks: sent.extend(chunks))
    assert (resumed.job_id, resumed.resumed, resumed.total) == (job.id, 2, 9)
    assert sent == [0, 0, 1, 2, 3, 4]  # chunk 0 again (its message may be lost), then the rest
    with factory() as session:
        members = session.scalars(select(JobImage).where(JobImage.job_id == job.id)).all()
        chunks = session.scalar(select(func.count()).select_from(JobChunk).where(JobChunk.job_id == job.id))
        assert session.get(Job, job.id).status == "running"
    assert len(members) == 9 and len({m.path for m in members}) == 9
    assert sorted(m.chunk for m in members) == [0, 0, 1, 1, 2, 2, 3, 3, 4] and chunks == 5


class StopsThisProcessWhenCollected:
    """Sends SIGTERM to this process from its ``__del__``, where Python drops what the signal's handler raises."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs (and raises) here, interrupting the sleep


def test_a_stop_that_python_drops_still_stops_the_recording(factory, tmp_path, monkeypatch):
    fake_chain(factory)
    write_faces(tmp_path / "photos", 9)
    dropped, sent = [], []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)

    def stopped_while_collecting_garbage(job_id, chunks):
        sent.extend(chunks)
        if sent == [0]:
            StopsThisProcessWhenCollected()  # collected at once: SIGTERM arrives inside its __del__

    restore = stop_like_ctrl_c()
    try:
        with pytest.raises(Terminated):
            record_job(factory, tmp_path / "photos", chunk_size=2, faces=ALIGNED_FACES,
                       on_chunks=stopped_while_collecting_garbage)
    finally:
        restore()
    assert [type(unraisable.exc_value) for unraisable in dropped] == [Terminated]  # Python dropped it...
    with factory() as session:
        job = session.scalar(select(Job))
    assert job.status == "interrupted" and sent == [0]  # ...and the submit stopped at the next batch all the same


def test_a_submit_killed_without_a_word_is_interrupted_once_its_lease_expires(factory, settings, tmp_path):
    fake_chain(factory)
    write_faces(tmp_path / "photos", 3)
    with pytest.raises(Killed):
        record_job(factory, tmp_path / "photos", chunk_size=2, faces=ALIGNED_FACES,
                   on_chunks=lambda job_id, chunks: (_ for _ in ()).throw(Killed))

    def recording(lease_left):  # as SIGKILL leaves it: recording, under the lease of the last chunk recorded
        with transaction(factory) as session:
            session.execute(update(Job).where(Job.id == 1).values(status="recording",
                                                                  lease_expires_at=utcnow() + lease_left))

    recording(timedelta(seconds=50))
    assert sweep(factory, settings, None).interrupted == []
    again = record_job(factory, tmp_path / "photos", chunk_size=2, faces=ALIGNED_FACES, on_chunks=lambda *_: None)
    assert again.resumed is None and again.job_id == 2  # the first submit may still be alive
    recording(-timedelta(seconds=1))
    assert sweep(factory, settings, None).interrupted == [1]


def _main():
    from annotator.cli import main

    return main


def test_recording_goes_on_after_the_database_came_back(factory, tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from annotator.jobs import creation

    fake_chain(factory)
    write_faces(tmp_path / "photos", 9)
    real_add, calls = creation.Recorder.add, []

    def add_losing_the_server_once(self, session, found):
        ready = real_add(self, session, found)  # written, then the server restarts before the commit
        calls.append(len(found.found))
        if len(calls) == 2:
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return ready

    monkeypatch.setattr(creation.Recorder, "add", add_losing_the_server_once)
    monkeypatch.setattr("db.session.RECONNECT_PAUSES", (0,))
    sent: list[int] = []
    job = record_job(factory, tmp_path / "photos", chunk_size=2, faces=ALIGNED_FACES,
                     on_chunks=lambda job_id, chunks: sent.extend(chunks))
    with factory() as session:
        members = session.scalars(select(JobImage).where(JobImage.job_id == job.job_id)).all()
        assert session.get(Job, job.job_id).status == "running"
    assert sorted(m.chunk for m in members) == [0, 0, 1, 1, 2, 2, 3, 3, 4]
    assert sent == [0, 1, 2, 3, 4] and job.chunks == [0, 1, 2, 3, 4]


def lost_on_first_poll(monkeypatch, reason: str) -> list[str]:
    """``read_progress`` fails with ``reason`` the first time it is called; returns the log of its calls."""
    from sqlalchemy.exc import OperationalError

    from annotator.jobs import orchestration

    real_read, calls = orchestration.read_progress, []

    def read_failing_once(factory, job_id):
        calls.append("read")
        if len(calls) == 1:
            raise OperationalError("SELECT", {}, Exception(reason))
        return real_read(factory, job_id)

    monkeypatch.setattr(orchestration, "read_progress", read_failing_once)
    return calls


def finished_job(factory, tmp_path) -> int:
    job = job_of(factory, tmp_path)
    with transaction(factory) as session:
        session.execute(update(Job).where(Job.id == job.job_id).values(status="finished"))
    return job.job_id


def test_a_wait_outlasts_a_database_restart_at_its_first_poll(factory, tmp_path, monkeypatch):
    from annotator.jobs.orchestration import wait_for

    job_id = finished_job(factory, tmp_path)
    calls = lost_on_first_poll(monkeypatch, "terminating connection due to administrator command")
    assert wait_for(factory, job_id).status == "finished"
    assert calls == ["read", "read"]


def test_a_first_poll_that_fails_for_another_reason_is_raised(factory, tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from annotator.jobs.orchestration import wait_for

    job_id = finished_job(factory, tmp_path)
    lost_on_first_poll(monkeypatch, 'relation "jobs" does not exist')
    with pytest.raises(OperationalError):
        wait_for(factory, job_id)
