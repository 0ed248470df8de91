"""``export``: the annotated faces as a training set, with its manifest."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from annotator.cli.common import load_settings, open_database, user_errors
from annotator.errors import AnnotateError
from annotator.exports.options import FORMATS, IMAGE_FORMATS, SOURCES, ExportOptions


def _split_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, float] | None:
    from annotator.exports.splits import parse_split

    try:
        return None if value is None else parse_split(value)
    except AnnotateError as error:
        raise click.BadParameter(str(error)) from None


@click.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True,
              help="csv, jsonl, parquet: one row per face; tfrecord: aligned faces with their labels; folders: "
                   "PNG faces in female/ and male/; condition-data: the seed project's layout.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="File, or folder for --format folders (csv, jsonl, condition-data default to standard output).")
@click.option("--job", "job_id", type=int, default=None, help="Only the images of this job.")
@click.option("--source", type=click.Choice(SOURCES), default="best", show_default=True,
              help="best: labels win over predictions; predictions: ignore labels; labels: only faces with a "
                   "label for every exported attribute; teachers: the teachers' values (`annotate teach`), labels "
                   "winning.")
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
    from annotator.cli.jobs import print_staleness
    from annotator.exports.run import run_export

    options = ExportOptions(format=fmt, source=source, attributes=attributes, split=split, seed=seed,
                            min_confidence=min_confidence, job_id=job_id, image_format=image_format)
    factory = open_database(load_settings())
    with factory() as session:
        result = run_export(session, options, output, sys.stdout)
    if result.manifest is not None:
        counts = ", ".join(f"{name} {count['total']}" for name, count in result.counts.items())
        click.echo(f"Wrote {result.rows} faces ({counts}) to {output}; manifest {result.manifest}.", err=True)
    if job_id is None and source != "teachers":
        print_staleness(factory, only_stale=True, err=True)
