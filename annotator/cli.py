"""The ``annotate`` command line. Heavy imports (TensorFlow, SQLAlchemy, Celery) happen inside commands."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from annotator.errors import AnnotateError
from annotator.export_options import FORMATS, IMAGE_FORMATS, SOURCES, ExportOptions
from annotator.face_modes import DEFAULT_MIN_FACE_SIZE, DEFAULT_MIN_SCORE
from annotator.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from annotator.face_modes import FaceOptions
    from annotator.jobs import NewJob
    from annotator.report import JobProgress, JobSummary

FAILURES_SHOWN = 20
IN_PROGRESS = ("recording", "running")
DEFAULT_WORKER_CONCURRENCY = 2


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def _database(settings: Settings) -> sessionmaker[Session]:
    """Open the database; the default SQLite one is created and migrated on first use."""
    from db.session import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    if engine.dialect.name == "sqlite":
        settings.home.mkdir(parents=True, exist_ok=True)
        from db.migrate import upgrade

        upgrade(engine)
    return make_session_factory(engine)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into a one-line message and exit code 1, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AnnotateError as error:
            raise click.ClickException(str(error)) from None
        except ValueError as error:
            raise click.ClickException(str(error)) from None

    return wrapper


@click.group()
@click.version_option(package_name="annotate")
def main() -> None:
    """Annotate folders of face images with a chain of Keras models; export labelled training sets."""


# --- submit -------------------------------------------------------------------------------------------------


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--wait/--no-wait", default=False, help="Show a progress bar until the job finishes.")
@click.option("--chunk-size", type=click.IntRange(1), envvar="ANNOTATE_CHUNK_SIZE", default=None,
              help="Images per task (default 256).")
@click.option("--queue", default="annotate", envvar="ANNOTATE_QUEUE", show_default=True,
              help="Queue for this job's chunks, e.g. 'gpu' for workers started with `--queues gpu`.")
@click.option("--faces", "face_mode", type=click.Choice(["detect", "aligned"]), default="detect", show_default=True,
              help="detect: find and align every face of ordinary photos. aligned: each image already is one "
                   "aligned portrait (fast; for datasets like the seed data).")
@click.option("--min-face-size", type=click.IntRange(12), default=DEFAULT_MIN_FACE_SIZE, show_default=True,
              help="With --faces detect: smallest face kept, in pixels of the photo.")
@click.option("--min-face-score", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=DEFAULT_MIN_SCORE, show_default=True, help="With --faces detect: lowest detector score kept.")
@user_errors
def submit(folder: Path, wait: bool, chunk_size: int | None, queue: str, face_mode: str, min_face_size: int,
           min_face_score: float) -> None:
    """Submit every image under FOLDER (recursively, recognised by content) as a job."""
    from annotator.face_modes import FaceMode, FaceOptions

    settings = _settings()
    factory = _database(settings)
    faces = FaceOptions(FaceMode(face_mode), min_face_size, min_face_score)
    size = chunk_size or settings.chunk_size
    if settings.eager:
        job = _record_then_run(settings, factory, folder, size, faces, wait)
    else:
        job = _record_while_queueing(settings, factory, folder, size, faces, queue)
    click.echo(f"Job {job.job_id}: {job.total} files, {len(job.chunks)} chunks, "
               f"{job.skipped} skipped, {job.failed} rejected before decoding (not images or unreadable).")
    if not job.chunks:
        click.echo("Nothing to annotate: every image is already annotated by the active model versions.")
    elif not settings.eager:
        click.echo(f"Queued {len(job.chunks)} chunks on queue {queue!r} of {settings.broker_url}.")
        if wait:
            _wait_for(factory, job.job_id)
    _print_summary(factory, job.job_id)


def _record_then_run(settings: Settings, factory: sessionmaker[Session], folder: Path, chunk_size: int,
                     faces: FaceOptions, wait: bool) -> NewJob:
    """No broker: record the whole job, then run its chunks here."""
    from annotator.jobs import create_job
    from db.session import transaction

    with transaction(factory) as session:
        job = create_job(session, folder, chunk_size=chunk_size, faces=faces)
    if job.chunks:
        _send_chunks(settings, factory, job.job_id, job.chunks, show_bar=wait)
    return job


def _record_while_queueing(settings: Settings, factory: sessionmaker[Session], folder: Path, chunk_size: int,
                           faces: FaceOptions, queue: str) -> NewJob:
    """With a broker: queue each chunk as soon as it is recorded, so workers start before the folder is done."""
    from annotator.jobs import record_job
    from worker.app import create_app

    task = create_app(settings).tasks["annotate.chunk"]

    def enqueue(job_id: int, chunks: list[int]) -> None:
        for chunk in chunks:
            task.apply_async((job_id, chunk), queue=queue)

    return record_job(factory, folder, chunk_size=chunk_size, faces=faces, on_chunks=enqueue)


def _run_job(settings: Settings, factory: sessionmaker[Session], job_id: int, chunks: list[int], *, wait: bool,
             queue: str) -> None:
    """Run (eager) or queue a recorded job's chunks, wait if asked, and print its summary."""
    if chunks:
        _send_chunks(settings, factory, job_id, chunks, show_bar=wait, queue=queue)
        if not settings.eager:
            click.echo(f"Queued {len(chunks)} chunks on queue {queue!r} of {settings.broker_url}.")
            if wait:
                _wait_for(factory, job_id)
    _print_summary(factory, job_id)


@main.command()
@click.option("--job", "job_id", type=int, default=None, help="Only the images of this job.")
@click.option("--wait/--no-wait", default=False, help="Show a progress bar until the jobs finish.")
@click.option("--chunk-size", type=click.IntRange(1), envvar="ANNOTATE_CHUNK_SIZE", default=None,
              help="Images per task (default 256).")
@click.option("--queue", default="annotate", envvar="ANNOTATE_QUEUE", show_default=True,
              help="Queue for the chunks.")
@user_errors
def reannotate(job_id: int | None, wait: bool, chunk_size: int | None, queue: str) -> None:
    """Annotate again the images whose faces have stale or missing predictions for the active models."""
    from annotator.reannotate import create_reannotation_jobs
    from db.session import transaction

    settings = _settings()
    factory = _database(settings)
    with transaction(factory) as session:
        jobs = create_reannotation_jobs(session, chunk_size=chunk_size or settings.chunk_size, job_id=job_id)
    if not jobs:
        click.echo("Nothing to reannotate: every face has current predictions from the active model versions.")
    for job in jobs:
        click.echo(f"Job {job.job_id}: {job.total} images with stale or missing predictions, "
                   f"{len(job.chunks)} chunks to run, {job.failed} files gone.")
        _run_job(settings, factory, job.job_id, job.chunks, wait=wait, queue=queue)


def _send_chunks(settings: Settings, factory: sessionmaker[Session], job_id: int, chunks: list[int],
                 show_bar: bool, queue: str = "annotate") -> None:
    """Send one task per chunk to ``queue``; without a broker they run here, one by one."""
    from worker.app import create_app

    task = create_app(settings).tasks["annotate.chunk"]
    if settings.eager:
        _run_inline(factory, job_id, chunks, task, show_bar)
        return
    for chunk in chunks:
        task.apply_async((job_id, chunk), queue=queue)


def _progress_bar(total: int):  # type: ignore[no-untyped-def]
    started = time.monotonic()

    def rate(_: object) -> str:
        seconds = time.monotonic() - started
        return f"{bar.pos / seconds:.1f} img/s" if seconds > 0 and bar.pos else ""

    bar = click.progressbar(length=total, label="Annotating", show_eta=True, show_pos=True, item_show_func=rate)
    return bar


def _progress(factory: sessionmaker[Session], job_id: int) -> JobProgress:
    from annotator.report import job_progress

    with factory() as session:
        return job_progress(session, job_id)


def _run_inline(factory: sessionmaker[Session], job_id: int, chunks: list[int], task: Any, show_bar: bool) -> None:
    if not show_bar:
        for chunk in chunks:
            task.delay(job_id, chunk)
        return
    progress = _progress(factory, job_id)
    with _progress_bar(total=progress.total) as bar:
        bar.update(progress.counted)
        for chunk in chunks:
            task.delay(job_id, chunk)
            bar.update(_progress(factory, job_id).counted - bar.pos)


def _wait_for(factory: sessionmaker[Session], job_id: int, interval: float = 0.1) -> None:
    """Show a progress bar until the job is no longer running (finished or cancelled)."""
    with _progress_bar(total=_progress(factory, job_id).total) as bar:
        while True:
            progress = _progress(factory, job_id)
            bar.update(progress.counted - bar.pos)
            if progress.status not in IN_PROGRESS:
                return
            time.sleep(interval)


# --- status -------------------------------------------------------------------------------------------------


def _format_summary(summary: JobSummary) -> str:
    return (f"job {summary.id:<5} {summary.status:<9} {summary.face_mode:<8} total {summary.total:<7} "
            f"done {summary.done:<7} skipped {summary.skipped:<6} failed {summary.failed:<6} "
            f"pending {summary.pending:<6} faces {summary.faces:<7} {summary.elapsed_seconds:7.1f}s  {summary.source}")


def _print_summary(factory: sessionmaker[Session], job_id: int, stall_seconds: int | None = None,
                   all_failures: bool = False) -> None:
    from annotator.operations import stalled_chunks
    from annotator.report import failed_images, job_summary

    with factory() as session:
        summary = job_summary(session, job_id)
        failures = failed_images(session, job_id)
        stalled = stalled_chunks(session, job_id, stall_seconds) if stall_seconds is not None else []
    click.echo(_format_summary(summary))
    for chunk in stalled:
        click.echo(f"  stalled chunk {chunk.chunk}: taken by {chunk.worker} at {chunk.started_at:%H:%M:%S}, "
                   f"attempt {chunk.attempts}; `annotate jobs retry {job_id}` queues it again")
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


@main.command()
@click.argument("job_id", type=int, required=False)
@click.option("--watch", is_flag=True, help="Refresh until the job (or every listed job) finishes.")
@click.option("--interval", type=click.FloatRange(0.1), default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--all-failures", is_flag=True, help=f"List every failed image, not only the first {FAILURES_SHOWN}.")
@user_errors
def status(job_id: int | None, watch: bool, interval: float, all_failures: bool) -> None:
    """Show jobs with their counts and timings; with JOB_ID, also its failed images and reason codes."""
    from annotator.report import recent_jobs

    settings = _settings()
    factory = _database(settings)
    while True:
        if job_id is not None:
            _print_summary(factory, job_id, settings.stall_seconds, all_failures)
            with factory() as session:
                running = _job_running(session, job_id)
        else:
            with factory() as session:
                jobs = recent_jobs(session)
            if not jobs:
                click.echo("No jobs yet. Submit a folder with `annotate submit FOLDER`.")
            for summary in jobs:
                click.echo(_format_summary(summary))
            running = any(j.status == "running" for j in jobs)
            _print_staleness(factory)
        if not (watch and running):
            return
        time.sleep(interval)
        click.echo("")


def _print_staleness(factory: sessionmaker[Session], only_stale: bool = False, err: bool = False) -> None:
    """One line: faces whose predictions are not from the active model versions."""
    from annotator.errors import NoActiveModelError
    from annotator.staleness import ChainVersions, stale_summary
    from annotator.store import active_chain_versions

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


def _job_running(session: Session, job_id: int) -> bool:
    from annotator.report import job_progress

    return job_progress(session, job_id).status in IN_PROGRESS


# --- jobs ---------------------------------------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """Operate jobs: cancel them, or queue their failed and stalled chunks again."""


@jobs.command("cancel")
@click.argument("job_id", type=int)
@user_errors
def jobs_cancel(job_id: int) -> None:
    """Cancel a running job; chunks not yet started do nothing when a worker takes them."""
    from annotator.operations import cancel_job
    from db.session import transaction

    with transaction(_database(_settings())) as session:
        skipped = cancel_job(session, job_id)
    click.echo(f"Cancelled job {job_id}: {skipped} pending images will not be annotated.")


@jobs.command("retry")
@click.argument("job_id", type=int)
@click.option("--queue", default="annotate", envvar="ANNOTATE_QUEUE", show_default=True,
              help="Queue to send the chunks to.")
@user_errors
def jobs_retry(job_id: int, queue: str) -> None:
    """Queue again the chunks of a job that have failed images or whose worker stalled."""
    from annotator.operations import chunks_to_retry
    from db.session import transaction

    settings = _settings()
    factory = _database(settings)
    with transaction(factory) as session:
        chunks = chunks_to_retry(session, job_id, settings.stall_seconds)
    if not chunks:
        click.echo(f"Job {job_id} has no failed or stalled chunks.")
        return
    _send_chunks(settings, factory, job_id, chunks, show_bar=False, queue=queue)
    click.echo(f"Queued {len(chunks)} chunks of job {job_id} again.")
    _print_summary(factory, job_id)


# --- export -------------------------------------------------------------------------------------------------


def _split_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, float] | None:
    from annotator.splits import parse_split

    try:
        return None if value is None else parse_split(value)
    except AnnotateError as error:
        raise click.BadParameter(str(error)) from None


@main.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True,
              help="csv, jsonl, parquet: one row per face; tfrecord: aligned faces with their labels; folders: "
                   "PNG faces in female/ and male/; condition-data: the seed project's layout.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="File, or folder for --format folders (csv, jsonl, condition-data default to standard output).")
@click.option("--job", "job_id", type=int, default=None, help="Only the images of this job.")
@click.option("--source", type=click.Choice(SOURCES), default="best", show_default=True,
              help="best: labels win over predictions; predictions: ignore labels; labels: only faces with a "
                   "label for every exported attribute.")
@click.option("--attribute", "attributes", multiple=True, metavar="NAME",
              help="Export only this attribute (repeatable): gender or a regressor such as eyes.")
@click.option("--split", callback=_split_option, metavar="NAME=FRACTION,...",
              help="e.g. train=0.8,val=0.1,test=0.1: stratified by gender, all faces of an image in one split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Drop faces whose larger gender probability is below this (labels count as 1).")
@click.option("--image-format", type=click.Choice(IMAGE_FORMATS), default="png", show_default=True,
              help="Encoding of the faces in --format tfrecord.")
@user_errors
def export(fmt: str, output: Path | None, job_id: int | None, source: str, attributes: tuple[str, ...],
           split: dict[str, float] | None, seed: int, min_confidence: float, image_format: str) -> None:
    """Export the annotated faces as a training set, with a manifest next to the output."""
    from annotator.exporter import run_export

    options = ExportOptions(format=fmt, source=source, attributes=attributes, split=split, seed=seed,
                            min_confidence=min_confidence, job_id=job_id, image_format=image_format)
    factory = _database(_settings())
    with factory() as session:
        result = run_export(session, options, output, sys.stdout)
    if result.manifest is not None:
        counts = ", ".join(f"{name} {count['total']}" for name, count in result.counts.items())
        click.echo(f"Wrote {result.rows} faces ({counts}) to {output}; manifest {result.manifest}.", err=True)
    if job_id is None:
        _print_staleness(factory, only_stale=True, err=True)


# --- labels -------------------------------------------------------------------------------------------------


@main.group()
def labels() -> None:
    """Human labels: export faces to label (Label Studio), import corrections (CSV or Label Studio JSON)."""


@labels.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", default=None, help="Name the labels are stored under (default: the file's name); "
                                             "importing the same source again updates its values.")
@user_errors
def labels_import(file: Path, source: str | None) -> None:
    """Import labels from FILE: a CSV keyed by sha256 or path, or a Label Studio JSON export."""
    from annotator.labels_import import import_labels
    from db.session import transaction

    with transaction(_database(_settings())) as session:
        result = import_labels(session, file, source)
    for problem in result.problems:
        click.echo(f"  skipped {problem}", err=True)
    click.echo(result.summary())


@labels.command("export")
@click.option("--format", "fmt", type=click.Choice(["label-studio"]), default="label-studio", show_default=True,
              help="label-studio: tasks with the predictions as pre-annotations, plus the labelling config.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Tasks file to write (JSON); the labelling config goes next to it as NAME.label_config.xml.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the N most uncertain faces.")
@click.option("--job", "job_id", type=int, default=None, help="Only the faces of this job.")
@click.option("--path-prefix", "path_prefixes", multiple=True, metavar="OLD=NEW",
              help="Rewrite image paths starting with OLD to start with NEW in the image URLs (repeatable), "
                   "e.g. to make them relative to Label Studio's LOCAL_FILES_DOCUMENT_ROOT.")
@user_errors
def labels_export(fmt: str, output: Path, limit: int | None, job_id: int | None,
                  path_prefixes: tuple[str, ...]) -> None:
    """Write the annotated faces as labelling tasks, most uncertain first."""
    from annotator.label_studio import parse_path_prefix
    from annotator.labels_export import write_label_studio

    prefixes = [parse_path_prefix(text) for text in path_prefixes]
    with _database(_settings())() as session:
        written = write_label_studio(session, output, job_id=job_id, limit=limit, prefixes=prefixes)
    click.echo(f"Wrote {written.count} tasks to {written.tasks} and the labelling config to {written.config}.")


# --- models -------------------------------------------------------------------------------------------------


@main.command()
@click.argument("target")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write (default: faces-<sha256 prefix>.png here).")
@click.option("--faces", "face_mode", type=click.Choice(["detect", "aligned"]), default="detect", show_default=True,
              help="Find faces as `submit --faces` does.")
@click.option("--min-face-size", type=click.IntRange(12), default=DEFAULT_MIN_FACE_SIZE, show_default=True)
@click.option("--min-face-score", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=DEFAULT_MIN_SCORE, show_default=True)
@user_errors
def show(target: str, output: Path | None, face_mode: str, min_face_size: int, min_face_score: float) -> None:
    """Draw TARGET (an image path, or a sha256 prefix from an export) with its faces, crops and values as a PNG."""
    from annotator.face_modes import FaceMode, FaceOptions
    from annotator.face_sheet import render_sheet
    from annotator.show import show_image

    settings = _settings()
    factory = _database(settings)
    options = FaceOptions(FaceMode(face_mode), min_face_size, min_face_score)
    with factory() as session:
        shown = show_image(session, target, options, settings.max_image_pixels)
    output = output or Path(f"faces-{shown.sha256[:12]}.png")
    title = f"{shown.path.name}  {shown.sha256[:12]}  {len(shown.faces)} face(s), {options.method}"
    render_sheet(shown.photo, shown.faces, title).save(output)
    for face in shown.faces:
        where = "" if face.detection is None else (
            f" box {[round(v) for v in face.detection.box]} score {face.detection.score:.3f}")
        click.echo(f"face {face.index}{where}: " + "; ".join(face.lines))
    if not shown.faces:
        click.echo(f"No face found in {shown.path} (try a smaller --min-face-size or --min-face-score).")
    click.echo(f"Wrote {output}")


@main.group()
def models() -> None:
    """The model store: list, activate, import, compare and train starter models."""


@models.command("list")
@user_errors
def models_list() -> None:
    """List stored model versions; '*' marks the active one of each model."""
    from annotator.store import list_versions

    factory = _database(_settings())
    with factory() as session:
        versions = list_versions(session)
    if not versions:
        click.echo("No models yet. Train the starter models with `annotate models demo`.")
    for version in versions:
        marker = "*" if version.active else " "
        demo = "  DEMO (generated portraits)" if version.is_demo else ""
        click.echo(f"{marker} {version.label:<22} {version.created_at:%Y-%m-%d %H:%M}  "
                   f"sha256 {version.sha256[:12]}  {version.path}{demo}")


@models.command("activate")
@click.argument("name")
@click.argument("version", type=int)
@user_errors
def models_activate(name: str, version: int) -> None:
    """Make version VERSION of model NAME the one new jobs run."""
    from annotator.store import activate_version
    from db.session import transaction

    factory = _database(_settings())
    with transaction(factory) as session:
        record = activate_version(session, name, version)
    click.echo(f"Active: {record.label}.")


@models.command("import")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--channel-order", type=click.Choice(["RGB", "BGR"], case_sensitive=False), default="RGB",
              show_default=True, help="Channel order the model was trained on; models of the seed project read "
                                      "images with OpenCV and need BGR.")
@click.option("--activate", is_flag=True, help="Make the imported version the one new jobs run.")
@user_errors
def models_import(name: str, path: Path, channel_order: str, activate: bool) -> None:
    """Import PATH (.keras, legacy .h5 weights or model, TF SavedModel folder) as the next version of NAME."""
    from annotator.tf_runtime import import_tensorflow

    import_tensorflow()
    from annotator.model_import import import_into_store
    from db.session import transaction

    settings = _settings()
    with transaction(_database(settings)) as session:
        record = import_into_store(session, settings.models_dir, name, path, channel_order=channel_order.upper(),
                                   activate=activate)
        label, version, fmt = record.label, record.version, record.metrics["format"]
    state = "active" if activate else f"not active; `annotate models activate {name} {version}` makes it so"
    click.echo(f"Imported {label} from {path} ({fmt}, {channel_order.upper()} channels): {state}.")


@models.command("compare")
@click.argument("name")
@click.argument("v1", type=int)
@click.argument("v2", type=int)
@click.option("--data", "labels_csv", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV of `path,label` rows (paths relative to the CSV): male/female for gender, 0..1 otherwise.")
@click.option("--neutral-gender", is_flag=True,
              help="Give regressors 0.5/0.5 as gender probabilities instead of the active gender model's.")
@user_errors
def models_compare(name: str, v1: int, v2: int, labels_csv: Path, neutral_gender: bool) -> None:
    """Compare versions V1 and V2 of model NAME on a labelled set of aligned faces with the seed report."""
    from annotator.tf_runtime import import_tensorflow

    import_tensorflow()
    from annotator.compare import compare_versions

    factory = _database(_settings())
    with factory() as session:
        comparison = compare_versions(session, name, (v1, v2), labels_csv, neutral_gender=neutral_gender)
    click.echo(comparison.format())


@models.command("demo")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated portraits.")
@user_errors
def models_demo(seed: int) -> None:
    """Train starter models on generated portraits (DEMO models: not for real photos) and activate them."""
    from annotator.tf_runtime import import_tensorflow

    import_tensorflow()
    from annotator.demo import train_demo_models
    from annotator.store import register_model
    from db.session import transaction

    settings = _settings()
    factory = _database(settings)
    click.echo("Training DEMO models on generated portraits; they show the pipeline works, not real accuracy.")
    results = train_demo_models(seed=seed, echo=click.echo)
    with transaction(factory) as session:
        for result in results:
            metrics = {"demo": True, "trained_on": f"generated portraits, seed {seed}", **result.report.to_dict()}
            record = register_model(session, settings.models_dir, result.spec, result.model, metrics=metrics,
                                    is_demo=True)
            click.echo(f"Registered and activated {record.label} (DEMO).")


def _class_map(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, float]:
    from annotator.training_data import parse_class_map

    try:
        return parse_class_map(value)
    except AnnotateError as error:
        raise click.BadParameter(str(error)) from None


@main.command()
@click.argument("name")
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path),
              help="A CSV of path,label rows (paths relative to it), a folder with manifest.csv, or a csv export.")
@click.option("--label-column", default=None,
              help="Column holding the label (default: 'label', else the column named like the model; gender "
                   "from an export: female_prob >= 0.5).")
@click.option("--class-map", callback=_class_map, default=None,
              help="Map class names to label values, e.g. mouth_open=1,mouth_closed=0.")
@click.option("--crop-level", is_flag=True,
              help="The images are ready-made crops of the model's input (e.g. mouth crops): resize them straight "
                   "to its input size, and give a regressor neutral 0.5/0.5 gender probabilities.")
@click.option("--group-column", default=None,
              help="Column of group ids (e.g. a person id): each group lands wholly in train or in validation.")
@click.option("--epochs", type=click.IntRange(1), default=40, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--val-split", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Share held out for validation [default: 0.1; identity 0.2].")
@click.option("--test-split", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="gender only: share held out as a test split that no callback sees, reported with its 95% "
                   "interval [default: 0.15].")
@click.option("--augment/--no-augment", default=None,
              help="Train on randomly flipped, shifted, zoomed and lit copies [default: on for gender, off for "
                   "the regressors; not for background_mean, whose label is brightness; identity always uses its "
                   "seed's augmentation].")
@click.option("--seed", type=int, default=112, show_default=True, help="Seed of the split and the weights.")
@click.option("--backbone-weights", type=click.Path(path_type=Path), default=None,
              help="identity only: MobileNetV2 ImageNet weights without top (Keras' "
                   "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5).")
@click.option("--activate", is_flag=True, help="Make the new version the one new jobs run (not if it collapsed).")
@click.option("--force", is_flag=True, help="With --activate: activate even a model that failed the collapse check.")
@user_errors
def train(name: str, data_path: Path, label_column: str | None, class_map: dict[str, float], crop_level: bool,
          group_column: str | None, epochs: int, batch_size: int, val_split: float | None,
          test_split: float | None, augment: bool | None, seed: int, backbone_weights: Path | None, activate: bool,
          force: bool) -> None:
    """Train model NAME on a labelled data set with the seed recipe; store it as a new version with its report."""
    from annotator.specs import OutputKind, get_spec
    from annotator.trainer import (
        TrainOptions,
        register_trained,
        test_split_for,
        train_on_data,
        training_metrics,
        val_split_for,
    )
    from db.session import transaction

    spec = get_spec(name)
    if backbone_weights is not None and not spec.backbone:
        raise click.UsageError(f"--backbone-weights is for models on a pretrained backbone; {name} has none.")
    settings = _settings()
    factory = _database(settings)  # before training: a database problem must not cost a finished run
    options = TrainOptions(label_column, class_map, crop_level, group_column, epochs, batch_size, val_split, seed,
                           backbone_weights, test_split, augment)
    # Only the gender report judges a test split: refuse rather than silently train on fewer rows.
    if test_split and spec.output is not OutputKind.GENDER_SOFTMAX:
        raise click.UsageError(f"--test-split is reported by the gender model only; {name} has validation only.")
    held_out = val_split_for(spec, options) + test_split_for(spec, options)
    if held_out >= 1:  # before decoding anything: nothing would be left to train on
        raise click.UsageError(f"--val-split and --test-split must leave rows to train on. Received: {held_out:g} "
                               "held out in all.")
    started = time.monotonic()
    trained = train_on_data(spec, data_path, options, click.echo)
    with transaction(factory) as session:
        registered = register_trained(session, settings.models_dir, trained.result,
                                      training_metrics(trained, data_path, options), activate=activate, force=force)
    minutes = (time.monotonic() - started) / 60
    if registered.activated:
        forced = " despite the failed collapse check (--force)" if registered.collapsed else ""
        click.echo(f"Registered and activated {registered.label}{forced} ({minutes:.1f} min).")
        return
    click.echo(f"Registered {registered.label}, not active ({minutes:.1f} min).")
    if registered.collapsed:
        refusal = (f"{registered.label} failed the collapse check: its outputs are all nearly the same value, so it "
                   f"did not learn. Not activating it; `annotate train {name} ... --activate --force` or "
                   f"`annotate models activate {name} {registered.version}` would.")
        if activate:
            raise click.ClickException(refusal)
        click.echo(f"Warning: {refusal}")
    else:
        click.echo(f"`annotate models activate {name} {registered.version}` makes it the one new jobs run.")


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(1), default=200, show_default=True, help="How many portraits.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the generator.")
def example(folder: Path, count: int, seed: int) -> None:
    """Write generated example portraits (aligned 120x120 faces) into FOLDER to try the pipeline on."""
    from annotator.portraits import write_portrait_folder

    paths = write_portrait_folder(folder, count, seed=seed)
    click.echo(f"Wrote {len(paths)} generated portraits to {folder}. They are aligned portraits, not photos: "
               f"annotate them with `annotate submit {folder} --faces aligned`.")


# --- db and worker ------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@user_errors
def db_upgrade() -> None:
    """Apply every pending migration to the configured database."""
    from db.migrate import upgrade
    from db.session import make_engine

    settings = _settings()
    if settings.database_url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(make_engine(settings.database_url))
    click.echo("Database is at the latest revision.")


@main.command()
@click.option("--queues", "-Q", default="annotate", show_default=True,
              help="Comma-separated queues to consume; GPU workers usually take 'gpu,annotate'.")
@click.option("--concurrency", "-c", type=click.IntRange(1), default=DEFAULT_WORKER_CONCURRENCY, show_default=True,
              help="Chunks in flight at once. Two keep the models busy while the other chunk is decoded and "
                   "written (measured 9% more images/s than one on 2 CPU cores).")
@click.option("--pool", type=click.Choice(["solo", "threads", "prefork"]), default=None,
              help="solo (default for one) runs one chunk at a time; threads (default for several) share one "
                   "copy of the models and overlap database writes with inference; prefork loads the models "
                   "in every child process.")
@click.option("--loglevel", "-l", default="info", show_default=True)
@click.option("--hostname", "-n", default=None, help="Node name, e.g. gpu0@%h (default: celery@HOST).")
@user_errors
def worker(queues: str, concurrency: int, pool: str | None, loglevel: str, hostname: str | None) -> None:
    """Start a Celery worker that annotates chunks (needs ANNOTATE_BROKER_URL)."""
    settings = _settings()
    if settings.eager:
        raise click.ClickException("ANNOTATE_BROKER_URL is not set: without a broker, `submit` runs jobs itself.")
    from worker.app import create_app

    # Models load on a chunk's first use, so a prefork child never inherits TensorFlow state from its parent.
    pool = pool or ("solo" if concurrency == 1 else "threads")
    argv = ["worker", f"--queues={queues}", f"--concurrency={concurrency}", f"--pool={pool}", f"--loglevel={loglevel}"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    create_app(settings).worker_main(argv)
