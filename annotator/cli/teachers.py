"""``teach``: offline teacher models label a folder's faces, stored as their own source (``teacher:NAME``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from annotator.cli.common import face_options, load_settings, open_database, user_errors

if TYPE_CHECKING:
    from annotator.faces.modes import FaceOptions
    from annotator.teachers.teaching import TeachResult

FAILURES_SHOWN = 20


def print_taught(result: TeachResult) -> None:
    """The counts of a teach run and its first failed files."""
    click.echo(f"{len(result.images)} images with {result.faces} faces have teacher values: {result.taught} taught "
               f"now ({result.values} values stored), {result.reused} already taught; {len(result.failed)} failed.")
    for path, reason, detail in result.failed[:FAILURES_SHOWN]:
        click.echo(f"  {reason:<14} {path}: {detail}")
    if len(result.failed) > FAILURES_SHOWN:
        click.echo(f"  ... and {len(result.failed) - FAILURES_SHOWN} more")


@click.command()
@click.argument("folder", type=click.Path(path_type=Path))
@face_options("detect: find and align every face of ordinary photos. aligned: each image already is one "
              "aligned face (no detector). The same faces rows as `submit` finds.")
@user_errors
def teach(folder: Path, faces: FaceOptions) -> None:
    """Label every face under FOLDER with the offline teacher models (needs `pip install 'annotate[teachers]'`).

    Values are stored as teacher:NAME, never as labels; people's labels win over them. Faces already taught are
    not taught again. See `annotate export --source teachers` and `annotate models bootstrap`.
    """
    from annotator.teachers.teaching import teach_folder

    settings = load_settings()
    factory = open_database(settings)
    with click.progressbar(length=0, label="Teaching", show_pos=True) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        result = teach_folder(factory, folder, faces, max_pixels=settings.max_image_pixels, progress=progress)
    print_taught(result)
