"""``submit``, ``reannotate``, ``status`` and ``jobs cancel|retry``: put work in, watch it, operate it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from annotator.cli.common import (
    chunk_size_option,
    face_options,
    load_settings,
    open_database,
    progress_bar,
    queue_option,
    user_errors,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from annotator.faces.modes import FaceOptions
    from annotator.jobs.status import JobSummary
    from annotator.settings import Settings

FAILURES_SHOWN = 20


@click.command()
@click.argument("source", required=False)
@click.option("--from-list", "from_list", metavar="FILE", default=None,
              help="A text file (one path or URI per line) or CSV (a path column) of the images, instead of SOURCE.")
@click.option("--wait/--no-wait", default=False, help="Show a progress bar until the job finishes.")
@chunk_size_option()
@queue_option("Queue for this job's chunks, e.g. 'gpu' for workers started with `--queues gpu`.")
@face_options("detect: find and align every face of ordinary photos. aligned: each image already is one "
              "aligned face (no detector).")
@user_errors
def submit(source: str | None, from_list: str | None, wait: bool, chunk_size: int | None, queue: str,
           faces: FaceOptions) -> None:
    """Submit every image under SOURCE (a folder, or a prefix such as s3://bucket/photos or gs://bucket/photos;
    recursively, recognised by content), or of --from-list FILE, as a job."""
    from annotator.jobs.orchestration import submit_source

    settings = load_settings()
    factory = open_database(settings)
    with progress_bar() as bar:
        job = submit_source(settings, factory, source, from_list=from_list,
                            chunk_size=chunk_size or settings.chunk_size, faces=faces,
                            queue=queue, on_progress=bar if wait and settings.eager else None)
    if job.resumed is not None:
        recorded = f"all {job.total}" if job.resumed == job.total else f"{job.resumed} of {job.total}"
        click.echo(f"Resumed job {job.job_id}: its submit was interrupted after recording {recorded} files.")
    click.echo(f"Job {job.job_id}: {job.total} files, {len(job.chunks)} chunks, "
               f"{job.skipped} skipped, {job.failed} rejected before decoding (not images or unreadable).")
    if not job.chunks:
        click.echo("Nothing to annotate: every image is already annotated by the active model versions.")
    elif not settings.eager:
        _report_queued(settings, factory, job.job_id, len(job.chunks), queue, wait)
    print_summary(factory, job.job_id)


def _report_queued(settings: Settings, factory: sessionmaker[Session], job_id: int, chunks: int, queue: str,
                   wait: bool) -> None:
    from annotator.jobs.orchestration import wait_for

    click.echo(f"Queued {chunks} chunks on queue {queue!r} of {settings.broker_url}.")
    if wait:
        with progress_bar() as bar:
            wait_for(factory, job_id, on_progress=bar, settings=settings)


@click.command()
@click.option("--job", "job_id", type=int, default=None, help="Only the images of this job.")
@click.option("--wait/--no-wait", default=False, help="Show a progress bar until the jobs finish.")
@chunk_size_option()
@queue_option("Queue for the chunks.")
@user_errors
def reannotate(job_id: int | None, wait: bool, chunk_size: int | None, queue: str) -> None:
    """Annotate again the images whose faces have stale or missing predictions for the active models."""
    from annotator.jobs.orchestration import run_chunks
    from annotator.jobs.reannotate import create_reannotation_jobs
    from db.session import transaction

    settings = load_settings()
    factory = open_database(settings)
    with transaction(factory) as session:
        jobs = create_reannotation_jobs(session, chunk_size=chunk_size or settings.chunk_size, job_id=job_id,
                                        queue=queue)
    if not jobs:
        click.echo("Nothing to reannotate: every face has current predictions from the active model versions.")
    for job in jobs:
        click.echo(f"Job {job.job_id}: {job.total} images with stale or missing predictions, "
                   f"{len(job.chunks)} chunks to run, {job.failed} files gone.")
        if job.chunks:
            with progress_bar() as bar:
                run_chunks(settings, factory, job.job_id, job.chunks, queue=queue,
                           on_progress=bar if wait and settings.eager else None)
            if not settings.eager:
                _report_queued(settings, factory, job.job_id, len(job.chunks), queue, wait)
        print_summary(factory, job.job_id)


def format_summary(summary: JobSummary) -> str:
    """One line per job: status, face mode, counts, time and source."""
    return (f"job {summary.id:<5} {summary.status:<11} {summary.face_mode:<8} total {summary.total:<7} "
            f"done {summary.done:<7} skipped {summary.skipped:<6} failed {summary.failed:<6} "
            f"pending {summary.pending:<6} faces {summary.faces:<7} {summary.elapsed_seconds:7.1f}s  {summary.source}")


def print_summary(factory: sessionmaker[Session], job_id: int, show_stalled: bool = False,
                  all_failures: bool = False) -> None:
    """The job's line, what happened to it, its stalled chunks and its failed images with their reason codes."""
    from annotator.jobs.operations import stalled_chunks
    from annotator.jobs.status import failed_images, job_summary

    with factory() as session:
        summary = job_summary(session, job_id)
        failures = failed_images(session, job_id)
        stalled = stalled_chunks(session, job_id) if show_stalled else []
    click.echo(format_summary(summary))
    if summary.status == "interrupted":
        recorded = summary.done + summary.skipped + summary.failed + summary.pending
        if summary.total > recorded:
            what = (f"the submit recording this job stopped after {recorded} of {summary.total} files; with a "
                    "broker the recorded ones are still annotated")
        else:
            what = f"the submit running this job here (no broker) stopped with {summary.pending} images to go"
        click.echo(f"  interrupted: {what}. Run `annotate submit {summary.source}` with the same options again to "
                   f"finish it (what is done is skipped), or `annotate jobs cancel {job_id}`.")
    for chunk in stalled:
        beat = f"last heartbeat {chunk.heartbeat_at:%H:%M:%S}" if chunk.heartbeat_at else "no heartbeat"
        click.echo(f"  stalled chunk {chunk.chunk}: taken by {chunk.worker} at {chunk.started_at:%H:%M:%S}, {beat}, "
                   f"attempt {chunk.attempts}; its lease expired, so the next sweep of a live worker queues it again")
    no_face = sum(failure.reason == "no_face" for failure in failures)
    if summary.total and no_face >= summary.total / 2:
        click.echo(f"  {no_face} of {summary.total} images have no face. If they are aligned portraits (one face "
                   "filling each image), submit them with `--faces aligned`.")
    shown = failures if all_failures else failures[:FAILURES_SHOWN]
    for failure in shown:
        click.echo(f"  failed  {failure.reason:<13} {failure.path}: {failure.detail}")
    if len(failures) > len(shown):
        click.echo(f"  ... and {len(failures) - FAILURES_SHOWN} more failed images; "
                   f"`annotate status {job_id} --all-failures` lists them all")


def print_staleness(factory: sessionmaker[Session], only_stale: bool = False, err: bool = False) -> None:
    """One line: faces whose predictions are not from the active model versions."""
    from annotator.errors import NoActiveModelError
    from annotator.jobs.staleness import ChainVersions, stale_summary
    from annotator.models.store import active_chain_versions

    with factory() as session:
        try:
            found = stale_summary(session, ChainVersions.of(active_chain_versions(session)))
        except NoActiveModelError:
            return
    if not found.faces:
        return
    if not found.outdated:
        if not only_stale:
            click.echo(f"faces {found.faces}: all predictions are from the active model versions", err=err)
        return
    details = ", ".join(f"{name} {count}" for name, count in found.stale.items() if count)
    missing = ", ".join(f"{name} {count}" for name, count in found.missing.items() if count)
    click.echo(f"faces {found.faces}: {found.outdated} stale (older model versions: {details or 'none'}; "
               f"missing: {missing or 'none'}); `annotate reannotate` updates them", err=err)


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option("--watch", is_flag=True, help="Refresh until the job (or every listed job) finishes.")
@click.option("--interval", type=click.FloatRange(0.1), default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--all-failures", is_flag=True, help=f"List every failed image, not only the first {FAILURES_SHOWN}.")
@user_errors
def status(job_id: int | None, watch: bool, interval: float, all_failures: bool) -> None:
    """Show jobs with their counts and timings; with JOB_ID, also its failed images and reason codes."""
    from annotator.jobs.orchestration import read_progress, sweep_once
    from annotator.jobs.status import recent_jobs

    settings = load_settings()
    factory = open_database(settings)
    while True:
        sweep_once(settings, factory)  # so what is shown is what happened: interrupted submits, expired leases
        if job_id is not None:
            print_summary(factory, job_id, show_stalled=True, all_failures=all_failures)
            running = read_progress(factory, job_id).in_progress
        else:
            with factory() as session:
                jobs = recent_jobs(session)
            if not jobs:
                click.echo("No jobs yet. Submit a folder with `annotate submit FOLDER`.")
            for summary in jobs:
                click.echo(format_summary(summary))
            running = any(j.status == "running" for j in jobs)
            print_staleness(factory)
        if not (watch and running):
            return
        time.sleep(interval)
        click.echo("")


@click.group()
def jobs() -> None:
    """Operate jobs: cancel them, or queue their failed and stalled chunks again."""


@jobs.command("cancel")
@click.argument("job_id", type=int)
@user_errors
def jobs_cancel(job_id: int) -> None:
    """Cancel a running job; chunks not yet started do nothing when a worker takes them."""
    from annotator.jobs.operations import cancel_job
    from db.session import transaction

    with transaction(open_database(load_settings())) as session:
        skipped = cancel_job(session, job_id)
    click.echo(f"Cancelled job {job_id}: {skipped} pending images will not be annotated.")


@jobs.command("retry")
@click.argument("job_id", type=int)
@queue_option("Queue to send the chunks to.")
@user_errors
def jobs_retry(job_id: int, queue: str) -> None:
    """Queue again the chunks of a job that have failed images or whose lease expired (workers also do this)."""
    from annotator.jobs.operations import chunks_to_retry
    from annotator.jobs.orchestration import run_chunks
    from db.session import transaction

    settings = load_settings()
    factory = open_database(settings)
    with transaction(factory) as session:
        chunks = chunks_to_retry(session, job_id)
    if not chunks:
        click.echo(f"Job {job_id} has no failed or stalled chunks.")
        return
    run_chunks(settings, factory, job_id, chunks, queue=queue)
    click.echo(f"Queued {len(chunks)} chunks of job {job_id} again.")
    print_summary(factory, job_id)
