"""``show``, ``report`` and ``example``: look at one photo's faces and values or at a whole run; write portraits
to try the pipeline on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from annotator.cli.common import face_options, load_settings, open_database, user_errors

if TYPE_CHECKING:
    from annotator.faces.modes import FaceOptions


@click.command()
@click.argument("target")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write (default: faces-<sha256 prefix>.png here).")
@face_options("Find faces as `submit --faces` does.")
@user_errors
def show(target: str, output: Path | None, faces: FaceOptions) -> None:
    """Draw TARGET (an image path or URI, or a sha256 prefix from an export) with its faces, crops and values
    as a PNG."""
    from annotator.faces.sheet import render_sheet
    from annotator.inspection.show import show_image

    settings = load_settings()
    with open_database(settings)() as session:
        shown = show_image(session, target, faces, home=settings.home, max_pixels=settings.max_image_pixels)
    output = output or Path(f"faces-{shown.sha256[:12]}.png")
    title = f"{shown.name}  {shown.sha256[:12]}  {len(shown.faces)} face(s), {faces.method}"
    render_sheet(shown.photo, shown.faces, title).save(output)
    for face in shown.faces:
        where = "" if face.detection is None else (
            f" box {[round(v) for v in face.detection.box]} score {face.detection.score:.3f}")
        click.echo(f"face {face.index}{where}: " + "; ".join(face.lines))
    if not shown.faces:
        click.echo(f"No face found in {shown.path} (try a smaller --min-face-size or --min-face-score).")
    click.echo(f"Wrote {output}")


@click.command()
@click.option("--job", "job_id", type=int, default=None, help="Only this job (its faces and model versions).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="HTML file to write.")
@user_errors
def report(job_id: int | None, output: Path) -> None:
    """Write one self-contained HTML report of the whole database (or one job): failures, value distributions,
    extreme and uncertain faces, agreement with labels, data-quality flags and near-duplicates."""
    from annotator.inspection.report import build_report

    def measuring(done: int, total: int) -> None:
        click.echo(f"\rmeasuring the quality of faces recorded before it was stored: {done:,}/{total:,}",
                   nl=done == total, err=True)

    settings = load_settings()
    built = build_report(open_database(settings), settings, output, job_id=job_id, on_progress=measuring)
    size = f"{built.size / 1e6:.1f} MB" if built.size >= 1e6 else f"{built.size / 1e3:.0f} kB"
    click.echo(f"Wrote {built.path} ({size}, {built.faces:,} faces, {built.thumbnails} "
               f"thumbnails) in {built.seconds:.1f} s")


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(1), default=200, show_default=True, help="How many portraits.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the generator.")
def example(folder: Path, count: int, seed: int) -> None:
    """Write generated example portraits (aligned 120x120 faces) into FOLDER to try the pipeline on."""
    from annotator.images.portraits import write_portrait_folder

    paths = write_portrait_folder(folder, count, seed=seed)
    click.echo(f"Wrote {len(paths)} generated portraits to {folder}. They are aligned portraits, not photos: "
               f"annotate them with `annotate submit {folder} --faces aligned`.")
