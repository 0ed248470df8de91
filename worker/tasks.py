"""Tasks: open the process context, call the plain function, retry what is transient."""

from __future__ import annotations

from celery import Celery, current_task
from celery.exceptions import Reject
from sqlalchemy.exc import InterfaceError, OperationalError

from annotator.jobs.pipeline import process_chunk

MAX_RETRIES = 8


def annotate_chunk(job_id: int, chunk: int) -> dict[str, int]:
    """Annotate one chunk of a job (ids only on the wire; everything else is re-read)."""
    from worker.context import get_context

    if get_context().keeper.closing.is_set():
        # Received during a warm shutdown (it may be a chunk this worker just handed back): back to the queue.
        raise Reject("this worker is shutting down", requeue=True)
    # The task id names the lease: a retry of this delivery (after a dropped connection) keeps the chunk.
    return annotate_chunk_as(current_task.request.id if current_task else None, job_id, chunk)


def annotate_chunk_as(owner: str | None, job_id: int, chunk: int) -> dict[str, int]:
    """Annotate one chunk under the lease ``owner`` names (a new one when None), in this process's context."""
    from worker.context import get_context

    context = get_context()
    outcome = process_chunk(context.factory, context.settings, job_id, chunk, owner=owner, keeper=context.keeper)
    return {"done": outcome.done, "failed": outcome.failed}


def register_tasks(app: Celery) -> None:
    """Register the tasks on ``app``; a lost connection to the database is retried with backoff."""
    app.task(
        name="annotate.chunk",
        autoretry_for=(OperationalError, InterfaceError),
        retry_backoff=True,
        retry_backoff_max=60,
        max_retries=MAX_RETRIES,
    )(annotate_chunk)
