"""``worker``: a Celery worker that annotates chunks."""

from __future__ import annotations

import os

import click

from annotator.cli.common import load_settings, user_errors

DEFAULT_WORKER_CONCURRENCY = 2


@click.command()
@click.option("--queues", "-Q", default="annotate", show_default=True,
              help="Comma-separated queues to consume; GPU workers usually take 'gpu,annotate'.")
@click.option("--concurrency", "-c", type=click.IntRange(1), default=DEFAULT_WORKER_CONCURRENCY, show_default=True,
              help="Chunks in flight at once. Two keep the models busy while the other chunk is decoded and "
                   "written (measured 9% more images/s than one on 2 CPU cores).")
@click.option("--pool", type=click.Choice(["solo", "threads", "prefork"]), default=None,
              help="solo (default for one) runs one chunk at a time; threads (default for several) share one "
                   "copy of the models and overlap database writes with inference; prefork loads the models "
                   "in every child process.")
@click.option("--decode-workers", type=click.IntRange(1), default=None,
              help="Processes (threads for aligned portraits) decoding, detecting and aligning images for the "
                   "chain, shared by the chunks in flight [default: ANNOTATE_DECODE_WORKERS, else one per CPU].")
@click.option("--loglevel", "-l", default="info", show_default=True)
@click.option("--hostname", "-n", default=None, help="Node name, e.g. gpu0@%h (default: celery@HOST).")
@user_errors
def worker(queues: str, concurrency: int, pool: str | None, decode_workers: int | None, loglevel: str,
           hostname: str | None) -> None:
    """Start a Celery worker that annotates chunks (needs ANNOTATE_BROKER_URL)."""
    if decode_workers is not None:  # the tasks read their settings from the environment
        os.environ["ANNOTATE_DECODE_WORKERS"] = str(decode_workers)
    settings = load_settings()
    if settings.eager:
        raise click.ClickException("ANNOTATE_BROKER_URL is not set: without a broker, `submit` runs jobs itself.")
    from worker.app import create_app

    # Models load on a chunk's first use, so a prefork child never inherits TensorFlow state from its parent.
    pool = pool or ("solo" if concurrency == 1 else "threads")
    argv = ["worker", f"--queues={queues}", f"--concurrency={concurrency}", f"--pool={pool}", f"--loglevel={loglevel}"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    create_app(settings).worker_main(argv)
