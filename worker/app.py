"""Build the Celery app from :class:`~annotator.settings.Settings` with delivery settings safe for TensorFlow."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from annotator.errors import BrokerUnreachableError
from annotator.settings import DEFAULT_QUEUE, Settings

BROKER_TIMEOUT = 5
"""Seconds to connect to the broker before a command says it cannot be reached."""


def create_app(settings: Settings) -> Celery:
    """A Celery app of the settings' broker: at-least-once JSON delivery. (Without a broker, `submit` runs the
    chunks itself: :func:`annotator.jobs.orchestration.run_chunks`.)"""
    app = Celery("annotate", set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=BROKER_TIMEOUT,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout,
                                  "socket_connect_timeout": BROKER_TIMEOUT, "socket_timeout": 30},
    )
    app.conf.broker_url = settings.broker_url
    from worker.supervision import install
    from worker.tasks import register_tasks

    register_tasks(app)
    install(app)
    return app


def check_broker(app: Celery) -> None:
    """Connect to the broker once, or raise :class:`BrokerUnreachableError` within seconds."""
    from kombu.exceptions import OperationalError

    with app.connection_for_write() as connection:
        try:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
        except (OperationalError, OSError) as error:
            reason = str(error).rstrip(".")
            raise BrokerUnreachableError(f"Cannot reach the broker at {connection.as_uri()} ({reason}): check "
                                         "ANNOTATE_BROKER_URL and that Redis is running.") from None


@lru_cache(maxsize=1)
def default_app() -> Celery:
    """The app configured from the environment (what ``celery -A worker`` and ``annotate worker`` run)."""
    return create_app(Settings.from_env())
