"""What a running worker does besides its tasks: heartbeats and sweeps, and handing chunks back on shutdown.

- When the worker is ready, its heartbeat thread also sweeps (:func:`annotator.jobs.recovery.sweep`) every
  ``ANNOTATE_HEARTBEAT_SECONDS``: an idle worker notices a dead one's chunks and lost messages.
- A warm shutdown (SIGTERM, Ctrl-C) hands every chunk this process holds back at once: released in the database
  and sent again, so another worker takes it now; the running tasks stop at their next image and write what they
  finished (idempotently).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, signals
from kombu.exceptions import ChannelError

from annotator.jobs.recovery import sweep

log = logging.getLogger(__name__)

SEND_RETRY = {"max_retries": 3, "interval_start": 0.5, "interval_step": 1, "interval_max": 2}
"""Publishing gives up after a few seconds when the broker is down (a later sweep sends again)."""
HAND_BACK_SECONDS = 15
"""How long a warm shutdown waits for its chunks to be handed back before going on."""


class CeleryBroker:
    """Chunks sent as ``annotate.chunk`` tasks of ``app``; queue sizes read from its broker."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def send(self, job_id: int, chunk: int, queue: str) -> None:
        """Queue the task of one chunk (gives up after a few seconds when the broker is down)."""
        self.app.tasks["annotate.chunk"].apply_async((job_id, chunk), queue=queue, retry=True,
                                                     retry_policy=SEND_RETRY)

    def waiting(self, queue: str) -> int:
        """Messages waiting in ``queue``; an absent queue (Redis deletes empty lists) holds none."""
        with self.app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
            try:
                return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:
                return 0


def _start_sweeping(app: Celery) -> None:
    from worker.context import get_context

    context = get_context()
    broker = CeleryBroker(app)
    # Load the publishing machinery now: on SIGTERM it must not wait for a chunk's thread to finish imports.
    app.amqp.producer_pool  # noqa: B018 - built on first access
    app.tasks["annotate.chunk"]

    def tick() -> None:
        sweep(context.factory, context.settings, broker)

    context.keeper.on_tick = tick
    context.keeper.start()


def _hand_back(app: Celery) -> None:
    from worker.context import get_context

    broker = CeleryBroker(app)
    keeper = get_context().keeper
    keeper.on_tick = None
    returned = keeper.hand_back_all(lambda lease: broker.send(lease.job_id, lease.chunk, lease.queue))
    if returned:
        log.warning("warm shutdown: handed back and sent again %s",
                    ", ".join(f"chunk {lease.chunk} of job {lease.job_id}" for lease in returned))


def _preload_tensorflow(consumer: Any) -> None:
    """Import TensorFlow before the first chunk in pools that do not fork (threads, solo).

    Its import holds the interpreter for seconds at a time; done during a chunk it would delay the hand-back
    of a warm shutdown. A prefork pool's parent must not import it (its children could not use it).
    """
    if "prefork" in type(getattr(consumer, "pool", None)).__module__:
        return
    from annotator.tf_runtime import import_tensorflow

    import_tensorflow()


def _survive_a_lost_redis_connection() -> None:
    """Keep a worker alive when Redis goes away while it holds unacknowledged messages.

    kombu's Redis channel restores those messages when it closes, and acknowledges each one when its task ends;
    with the channel's connection already gone both fail with an ``AttributeError`` (``'NoneType' object has no
    attribute 'hostname'`` / ``'client'``; kombu issues 582 and 970), which Celery treats as unrecoverable: the
    worker exits instead of reconnecting (measured here: both workers exited on ``Redis killed and restarted
    empty``). There is nothing to restore or acknowledge then (the broker is gone and may come back empty); the
    chunks' leases and the lost-message sweep take care of them.
    """
    from kombu.transport import redis

    def tolerant(name: str) -> None:
        original = getattr(redis.QoS, name)
        if getattr(original, "annotate_patched", False):
            return

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(self, *args, **kwargs)
            except AttributeError:
                connection = self.channel.connection
                if connection is not None and getattr(connection, "client", None) is not None:
                    raise
                log.warning("lost the broker: skipped %s of %s unacknowledged messages (sweeps send their "
                            "chunks again)", name, len(self._delivered))
                if name == "restore_unacked":
                    self._delivered.clear()
                return None

        call.annotate_patched = True  # type: ignore[attr-defined]
        setattr(redis.QoS, name, call)

    for name in ("restore_unacked", "ack", "reject"):
        tolerant(name)


def install(app: Celery) -> None:
    """Connect the worker signals of ``app`` (once per process)."""
    _survive_a_lost_redis_connection()

    def ready(sender: Any = None, **_: Any) -> None:
        _preload_tensorflow(sender)
        _start_sweeping(app)

    def shutting_down(how: str = "Warm", **_: Any) -> None:
        # In a thread: the signal may have interrupted the main thread inside a lock the hand-back needs.
        helper = threading.Thread(target=_guarded, args=(_hand_back, app), name="annotate-hand-back", daemon=True)
        helper.start()
        helper.join(HAND_BACK_SECONDS)

    signals.worker_ready.connect(ready, weak=False, dispatch_uid="annotate-sweep")
    signals.worker_shutting_down.connect(shutting_down, weak=False, dispatch_uid="annotate-hand-back")


def _guarded(step: Any, app: Celery) -> None:
    try:
        step(app)
    except Exception:
        log.warning("could not hand the chunks back; they are taken over when their leases expire", exc_info=True)
