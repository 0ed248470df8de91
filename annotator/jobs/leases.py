"""Leases on chunks: a worker takes a chunk by writing a lease in the database and renews it while it works.

A chunk is taken with one compare-and-set ``UPDATE``: it must be queued, or running under a lease that has
expired (its worker died or froze) or that belongs to the same delivery (a retry of the same task after a lost
database connection). A heartbeat thread renews every lease the process holds; a renewal that finds the lease
gone (another worker took the chunk over) marks it lost, and the worker stops working on that chunk. Writes are
idempotent, so a worker that notices late duplicates nothing.

Times are the workers' clocks (UTC): keep them in sync (NTP); a lease of 60 s tolerates seconds of skew.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import ChunkStatus, Job, JobChunk, JobStatus, utcnow
from db.session import transaction

log = logging.getLogger(__name__)


def worker_name() -> str:
    """``host:pid`` of this process, as recorded on the chunks it takes."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Lease:
    """A chunk this process holds; ``stop`` is set when it was lost or handed back: stop working on it."""

    job_id: int
    chunk: int
    owner: str
    queue: str
    stop: threading.Event = field(default_factory=threading.Event)
    handed_back: bool = False

    @property
    def stopped(self) -> bool:
        """True once the chunk is no longer this process's to finish."""
        return self.stop.is_set()


def take_chunk(session: Session, job_id: int, chunk: int, owner: str, lease_seconds: int) -> Lease | None:
    """Take the chunk under a new lease; None when it is done, held by a live lease, or its job cancelled."""
    job = session.execute(select(Job.status, Job.queue).where(Job.id == job_id)).one_or_none()
    if job is None or job.status == JobStatus.CANCELLED.value:
        return None
    now = utcnow()
    takeable = or_(
        JobChunk.status == ChunkStatus.QUEUED.value,
        and_(JobChunk.status == ChunkStatus.RUNNING.value,
             or_(JobChunk.lease_expires_at.is_(None), JobChunk.lease_expires_at < now, JobChunk.lease_owner == owner)),
    )
    retry = session.scalar(select(JobChunk.lease_owner == owner).where(JobChunk.job_id == job_id,
                                                                        JobChunk.chunk == chunk))
    result = session.execute(
        update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.chunk == chunk, takeable).values(
            status=ChunkStatus.RUNNING.value, started_at=now, worker=worker_name(), lease_owner=owner,
            heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds),
            # A retry of the same delivery (the database connection dropped) is not another attempt.
            attempts=JobChunk.attempts if retry else JobChunk.attempts + 1,
        )
    )
    return Lease(job_id, chunk, owner, job.queue) if result.rowcount == 1 else None


def finish_chunk(session: Session, lease: Lease) -> bool:
    """Mark the chunk done if this lease still holds it (a newer holder finishes it otherwise)."""
    result = session.execute(
        update(JobChunk).where(JobChunk.job_id == lease.job_id, JobChunk.chunk == lease.chunk,
                               JobChunk.lease_owner == lease.owner)
        .values(status=ChunkStatus.DONE.value, finished_at=utcnow(), lease_owner=None, lease_expires_at=None)
    )
    return result.rowcount == 1


def renew(session: Session, lease: Lease, lease_seconds: int) -> bool:
    """Extend the lease; False when another worker took the chunk over (or it was handed back)."""
    now = utcnow()
    result = session.execute(
        update(JobChunk).where(JobChunk.job_id == lease.job_id, JobChunk.chunk == lease.chunk,
                               JobChunk.lease_owner == lease.owner, JobChunk.status == ChunkStatus.RUNNING.value)
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    return result.rowcount == 1


def release(session: Session, lease: Lease) -> bool:
    """Hand the chunk back: queued again at once, for another worker (the caller sends its message)."""
    result = session.execute(
        update(JobChunk).where(JobChunk.job_id == lease.job_id, JobChunk.chunk == lease.chunk,
                               JobChunk.lease_owner == lease.owner, JobChunk.status == ChunkStatus.RUNNING.value)
        .values(status=ChunkStatus.QUEUED.value, queued_at=utcnow(), lease_owner=None, lease_expires_at=None)
    )
    return result.rowcount == 1


class LeaseKeeper:
    """The leases of one process, renewed every ``heartbeat_seconds`` by one daemon thread.

    ``on_tick`` (optional) runs on the same thread after each renewal: the worker's sweep for other
    workers' expired leases and lost messages. With ``autostart`` off, :meth:`hold` does not start the thread
    (renew with :meth:`renew_all`).
    """

    def __init__(self, factory: sessionmaker[Session], lease_seconds: int, heartbeat_seconds: int,
                 on_tick: Callable[[], None] | None = None, *, autostart: bool = True) -> None:
        self.factory, self.lease_seconds, self.heartbeat_seconds = factory, lease_seconds, heartbeat_seconds
        self.on_tick, self.autostart = on_tick, autostart
        self._held: dict[tuple[int, int, str], Lease] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self.closing = threading.Event()  # set when the process hands its chunks back: take no new ones
        self._thread: threading.Thread | None = None

    def hold(self, lease: Lease) -> None:
        """Renew ``lease`` from now on (starts the heartbeat thread on first use)."""
        with self._lock:
            self._held[(lease.job_id, lease.chunk, lease.owner)] = lease
        if self.autostart:
            self.start()

    def drop(self, lease: Lease) -> None:
        """Stop renewing ``lease`` (its chunk is finished, failed or handed back)."""
        with self._lock:
            self._held.pop((lease.job_id, lease.chunk, lease.owner), None)

    def held(self) -> list[Lease]:
        """The leases renewed now."""
        with self._lock:
            return list(self._held.values())

    def start(self) -> None:
        """Start the heartbeat thread if it is not running."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._closed.clear()
                self._thread = threading.Thread(target=self._run, name="annotate-heartbeat", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the heartbeat thread (leases still held then expire on their own)."""
        self._closed.set()
        self._wake.set()

    def renew_all(self) -> None:
        """Renew every held lease once; a lease found taken over is marked lost (its ``stop`` is set)."""
        for lease in self.held():
            if lease.stopped:
                continue
            with transaction(self.factory) as session:
                kept = renew(session, lease, self.lease_seconds)
            if not kept:
                log.warning("chunk %s of job %s was taken over by another worker; stopping work on it",
                            lease.chunk, lease.job_id)
                lease.stop.set()

    def hand_back_all(self, send: Callable[[Lease], None]) -> list[Lease]:
        """Release every held lease and ``send`` each chunk again, for a warm shutdown (no new ones are taken).

        The releases come first, in one transaction: once they are committed the chunks are queued again, and a
        send that cannot happen (the broker gone) leaves a lost message that sweeps send again.
        """
        self.closing.set()
        held = self.held()
        for lease in held:
            lease.handed_back = True
            lease.stop.set()
        with transaction(self.factory) as session:
            returned = [lease for lease in held if release(session, lease)]
        if returned:
            log.warning("handing back %s", ", ".join(f"chunk {lease.chunk} of job {lease.job_id}" for lease in returned))
        for lease in returned:
            send(lease)
        return returned

    def _run(self) -> None:
        while not self._closed.is_set():
            for step in (self.renew_all, self.on_tick):
                if step is None:
                    continue
                try:
                    step()
                except Exception:
                    log.warning("heartbeat: %s failed; trying again in %s s", getattr(step, "__name__", step),
                                self.heartbeat_seconds, exc_info=True)
            self._wake.wait(self.heartbeat_seconds)
            self._wake.clear()
