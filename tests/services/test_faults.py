"""Faults in the middle of a job, all settings at their defaults: two workers, ``annotate submit --wait``, one
fault; the wait must end by itself within 2 minutes of the fault with every image annotated exactly once."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from sqlalchemy import func, select

from db.models import ChunkStatus, Job, JobChunk, JobImage
from tests.services.conftest import ANNOTATE
from tests.services.helpers import assert_exactly_once

pytestmark = pytest.mark.services

RECOVERY_LIMIT = 120
IMAGES, CHUNK_SIZE, SIDE = 240, 20, 240
"""12 chunks, four in flight at a time on two workers: a fault lands while chunks run and others wait."""


class Submission:
    """``annotate submit FOLDER --faces aligned --wait`` running as a user would run it."""

    def __init__(self, env: dict[str, str], folder, log) -> None:  # type: ignore[no-untyped-def]
        self.log = log
        self.process = subprocess.Popen(
            [ANNOTATE, "submit", str(folder), "--faces", "aligned", "--chunk-size", str(CHUNK_SIZE), "--wait"],
            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def seconds_to_end(self, since: float) -> float:
        """Wait for the submit to end; seconds from ``since`` (the fault) until it did."""
        try:
            self.process.wait(timeout=RECOVERY_LIMIT + 60 - (time.monotonic() - since))
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"submit --wait still waiting:\n{self.output()}") from None
        ended = time.monotonic() - since
        assert self.process.returncode == 0, self.output()
        return ended

    def output(self) -> str:
        """What the submit printed."""
        return self.log.read_text(errors="replace")


def held(factory, pid: int) -> int:  # type: ignore[no-untyped-def]
    """Chunks worker process ``pid`` holds now."""
    with factory() as session:
        return session.scalar(select(func.count()).select_from(JobChunk).where(
            JobChunk.status == ChunkStatus.RUNNING.value, JobChunk.worker.like(f"%:{pid}"))) or 0


def queued(factory) -> int:  # type: ignore[no-untyped-def]
    """Chunks waiting for a worker."""
    with factory() as session:
        return session.scalar(select(func.count()).select_from(JobChunk)
                              .where(JobChunk.status == ChunkStatus.QUEUED.value)) or 0


def start_job(factory, workers, service_env, photos, tmp_path,  # type: ignore[no-untyped-def]
              waiting: int = 0) -> tuple[Submission, int]:
    """Two workers and a submit; returns once worker ``w1`` holds a chunk (with how many it holds) while at least
    ``waiting`` chunks wait in the queue."""
    workers.start("w1", "w2")
    submission = Submission(service_env, photos(IMAGES, SIDE), tmp_path / "submit.log")
    deadline = time.monotonic() + 120
    while not ((count := held(factory, workers.processes["w1"].pid)) and queued(factory) >= waiting):
        assert time.monotonic() < deadline and submission.process.poll() is None, submission.output()
        time.sleep(0.02)
    return submission, count


def check_outcome(factory, submission: Submission, fault: str, recovery: float) -> Job:  # type: ignore[no-untyped-def]
    """Every image annotated once, the job finished, in time; prints the recovery time."""
    print(f"\nrecovery after {fault}: {recovery:.1f} s")
    assert recovery <= RECOVERY_LIMIT, f"{fault}: the job took {recovery:.0f} s to finish after the fault"
    assert_exactly_once(factory, IMAGES)
    with factory() as session:
        job = session.scalar(select(Job).order_by(Job.id.desc()))
    assert job.status == "finished"
    assert f"done {IMAGES}" in submission.output() and "pending 0" in submission.output()
    return job


def attempts(factory) -> list[int]:  # type: ignore[no-untyped-def]
    """How often each chunk was taken."""
    with factory() as session:
        return sorted(session.scalars(select(JobChunk.attempts)).all(), reverse=True)


def test_a_worker_killed_with_sigkill(factory, workers, service_env, photos, tmp_path):
    submission, interrupted = start_job(factory, workers, service_env, photos, tmp_path)
    fault = time.monotonic()
    workers.signal("w1", signal.SIGKILL)
    check_outcome(factory, submission, "SIGKILL", submission.seconds_to_end(fault))
    # The killed worker's chunks were taken over once their leases expired.
    assert attempts(factory)[:interrupted] == [2] * interrupted


def test_a_worker_frozen_for_90_seconds(factory, workers, service_env, photos, tmp_path):
    submission, frozen = start_job(factory, workers, service_env, photos, tmp_path)
    fault = time.monotonic()
    workers.signal("w1", signal.SIGSTOP)
    recovery = submission.seconds_to_end(fault)
    time.sleep(max(0.0, fault + 90 - time.monotonic()))
    workers.signal("w1", signal.SIGCONT)
    job = check_outcome(factory, submission, "SIGSTOP 90 s", recovery)
    # The worker wakes up late, finds its leases taken over, and writes nothing twice.
    deadline = time.monotonic() + 30
    while "taken over by another worker" not in workers.log("w1"):
        assert time.monotonic() < deadline, workers.log("w1")
        time.sleep(0.2)
    time.sleep(3)
    assert_exactly_once(factory, IMAGES)
    with factory() as session:
        assert session.get(Job, job.id).finished_at == job.finished_at
    assert attempts(factory)[:frozen] == [2] * frozen


def test_redis_killed_and_restarted_empty(factory, workers, service_env, redis_server, photos, tmp_path):
    # Chunks wait in the queue when Redis goes: their messages are lost, and unacknowledged ones too.
    submission, _ = start_job(factory, workers, service_env, photos, tmp_path, waiting=2)
    fault = time.monotonic()
    redis_server.kill()
    redis_server.start()
    check_outcome(factory, submission, "Redis restarted empty", submission.seconds_to_end(fault))
    for name in ("w1", "w2"):
        assert workers.processes[name].poll() is None, f"worker {name} exited:\n{workers.log(name)[-3000:]}"


def test_postgres_restarted(factory, workers, service_env, postgres_cluster, photos, tmp_path):
    submission, _ = start_job(factory, workers, service_env, photos, tmp_path)
    fault = time.monotonic()
    postgres_cluster.restart()
    check_outcome(factory, submission, "pg_ctl restart -m fast", submission.seconds_to_end(fault))


def test_a_submit_without_a_broker_outlasts_a_postgres_restart(factory, service_env, postgres_cluster, photos,
                                                               tmp_path):
    # No broker: the submit runs the chunks itself, and waits out the restart as a worker's task would.
    env = {key: value for key, value in service_env.items() if key != "ANNOTATE_BROKER_URL"}
    submission = Submission(env, photos(IMAGES, SIDE), tmp_path / "submit.log")
    deadline = time.monotonic() + 120
    while True:
        with factory() as session:
            done = session.scalar(select(func.count()).select_from(JobChunk)
                                  .where(JobChunk.status == ChunkStatus.DONE.value)) or 0
        if 2 <= done < IMAGES // CHUNK_SIZE:
            break
        assert submission.process.poll() is None and time.monotonic() < deadline, submission.output()
        time.sleep(0.05)
    fault = time.monotonic()
    postgres_cluster.restart()
    check_outcome(factory, submission, "pg_ctl restart -m fast, no broker", submission.seconds_to_end(fault))
    assert "Traceback" not in submission.output()


def test_a_worker_stopped_with_sigterm_hands_its_chunks_back_at_once(factory, workers, service_env, photos, tmp_path):
    submission, handed = start_job(factory, workers, service_env, photos, tmp_path)
    fault = time.monotonic()
    workers.signal("w1", signal.SIGTERM)
    workers.processes["w1"].wait(timeout=60)
    stopped = time.monotonic() - fault
    job = check_outcome(factory, submission, "SIGTERM", submission.seconds_to_end(fault))
    assert "handing back" in workers.log("w1")
    with factory() as session:
        chunks = session.scalars(select(JobChunk).where(JobChunk.job_id == job.id)).all()
    w1 = f":{workers.processes['w1'].pid}"
    assert handed and any(c.attempts == 2 and not c.worker.endswith(w1) for c in chunks)
    print(f"SIGTERM: the worker exited {stopped:.1f} s after the signal")
    # Handed back, not left to a lease that expires: the worker stopped well before its lease could run out.
    assert stopped < 30


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_submit_stopped_while_recording_is_resumed_by_the_same_submit(factory, workers, service_env, photos, stop):
    folder = photos(1200, 16)  # small files, small chunks: recording takes seconds
    workers.start("w1")
    command = [ANNOTATE, "submit", str(folder), "--faces", "aligned", "--chunk-size", "10"]
    # A shell ignores Ctrl-C in the commands it starts in the background (`.ci/run &`), and children inherit that:
    # handled here while the submit starts, Ctrl-C reaches it as it would from a terminal.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        first = subprocess.Popen(command, env=service_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    finally:
        signal.signal(signal.SIGINT, inherited)
    deadline = time.monotonic() + 120
    while True:
        with factory() as session:
            recorded = session.scalar(select(func.count()).select_from(JobChunk)) or 0
        if recorded >= 3:
            break
        assert time.monotonic() < deadline and first.poll() is None, first.stdout.read().decode()
        time.sleep(0.01)
    first.send_signal(stop)  # Ctrl-C, or `kill`, in the middle of recording
    first.wait(timeout=60)
    output = first.stdout.read().decode()
    with factory() as session:
        job = session.scalar(select(Job))
        members = session.scalar(select(func.count()).select_from(JobImage))
    assert job.status == "interrupted" and members < 1200, (job.status, members, first.returncode, output)
    started = time.monotonic()
    second = subprocess.run([*command, "--wait"], env=service_env, capture_output=True, text=True, timeout=300,
                            check=False)
    print(f"\nresumed submit: {members} of 1200 files had been recorded; it ended after "
          f"{time.monotonic() - started:.1f} s")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"Resumed job {job.id}: its submit was interrupted after recording {members} of 1200 files" in second.stdout
    assert "done 1200" in second.stdout and "pending 0" in second.stdout
    assert_exactly_once(factory, 1200)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1
        assert session.get(Job, job.id).status == "finished"
