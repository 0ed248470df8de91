"""``export``: the annotated faces as a training set, with its manifest."""

from __future__ import annotations

import sys

import click

from annotator.cli.common import load_settings, open_database, user_errors
from annotator.errors import AnnotateError
from annotator.exports.options import (
    DUPLICATE_THRESHOLD,
    FORMATS,
    GROUP_BY,
    IMAGE_FORMATS,
    SOURCES,
    ExportOptions,
)


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
@click.option("-o", "--output", default=None,
              help="File, or folder for --format folders (csv, jsonl, condition-data default to standard output); "
                   "a URI such as s3://bucket/labels.csv writes to an object store.")
@click.option("--job", "job_id", type=int, default=None, help="Only the images of this job.")
@click.option("--source", type=click.Choice(SOURCES), default="best", show_default=True,
              help="best: labels win over predictions; predictions: ignore labels; labels: only faces with a "
                   "label for every exported attribute; teachers: the teachers' values (`annotate teach`), labels "
                   "winning.")
@click.option("--attribute", "attributes", multiple=True, metavar="NAME",
              help="Export only this attribute (repeatable): gender or a regressor such as eyes.")
@click.option("--split", callback=_split_option, metavar="NAME=FRACTION,...",
              help="e.g. train=0.8,val=0.1,test=0.1: stratified by gender; all faces of an image, and images that "
                   "are near-duplicates (re-encoded or resized copies), in one split.")
@click.option("--duplicate-threshold", type=click.IntRange(0, 255), default=DUPLICATE_THRESHOLD, show_default=True,
              metavar="BITS", help="With --split: images whose perceptual hashes (256 bits) differ in at most this "
                                   "many bits are near-duplicates; 0 joins only identical hashes.")
@click.option("--group-by", type=click.Choice(GROUP_BY), default="image", show_default=True,
              help="With --split: person also keeps the faces of one person together (dlib's face descriptor; "
                   "pip install 'annotate[people]'; about 0.2 s a face).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Drop faces whose larger gender probability is below this (labels count as 1).")
@click.option("--image-format", type=click.Choice(IMAGE_FORMATS), default="png", show_default=True,
              help="Encoding of the faces in --format tfrecord.")
@user_errors
def export(fmt: str, output: str | None, job_id: int | None, source: str, attributes: tuple[str, ...],
           split: dict[str, float] | None, duplicate_threshold: int, group_by: str, seed: int, min_confidence: float,
           image_format: str) -> None:
    """Export the annotated faces as a training set, with a manifest next to the output."""
    from annotator.cli.jobs import print_staleness
    from annotator.exports.run import run_export
    from db.session import transaction

    options = ExportOptions(format=fmt, source=source, attributes=attributes, split=split, seed=seed,
                            min_confidence=min_confidence, job_id=job_id, image_format=image_format,
                            duplicate_threshold=duplicate_threshold, group_by=group_by)
    factory = open_database(load_settings())
    with transaction(factory) as session:  # a split stores the perceptual hashes it had to compute
        result = run_export(session, options, output, sys.stdout, echo=lambda line: click.echo(line, err=True))
    if result.manifest is not None:
        counts = ", ".join(f"{name} {count['total']}" for name, count in result.counts.items())
        click.echo(f"Wrote {result.rows} faces ({counts}) to {output}; manifest {result.manifest}.", err=True)
        if result.groups is not None:
            click.echo(result.groups.describe(), err=True)
    if job_id is None and source != "teachers":
        print_staleness(factory, only_stale=True, err=True)
