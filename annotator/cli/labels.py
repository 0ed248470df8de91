"""``labels import|export``: people's labels in, faces to label out (CSV or Label Studio)."""

from __future__ import annotations

from pathlib import Path

import click

from annotator.cli.common import load_settings, open_database, user_errors


@click.group()
def labels() -> None:
    """Human labels: export faces to label (Label Studio), import corrections (CSV or Label Studio JSON)."""


@labels.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", default=None, help="Name the labels are stored under (default: the file's name); "
                                             "importing the same source again updates its values.")
@user_errors
def labels_import(file: Path, source: str | None) -> None:
    """Import labels from FILE: a CSV keyed by sha256 or path, or a Label Studio JSON export."""
    from annotator.labels.importing import import_labels
    from db.session import transaction

    with transaction(open_database(load_settings())) as session:
        result = import_labels(session, file, source)
    for problem in result.problems:
        click.echo(f"  skipped {problem}", err=True)
    click.echo(result.summary())


@labels.command("export")
@click.option("--format", "fmt", type=click.Choice(["label-studio"]), default="label-studio", show_default=True,
              help="label-studio: tasks with the predictions as pre-annotations, plus the labelling config.")
@click.option("-o", "--output", required=True,
              help="Tasks file to write (JSON; a URI such as s3://bucket/tasks.json writes to a store); the "
                   "labelling config goes next to it as NAME.label_config.xml.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N faces of the order.")
@click.option("--order", type=click.Choice(["uncertainty", "disagreement"]), default="uncertainty", show_default=True,
              help="uncertainty: the chain's most doubtful faces first; disagreement: the faces where the chain and "
                   "the teachers (`annotate teach`) differ most first.")
@click.option("--job", "job_id", type=int, default=None, help="Only the faces of this job.")
@click.option("--path-prefix", "path_prefixes", multiple=True, metavar="OLD=NEW",
              help="Rewrite image paths starting with OLD to start with NEW in the image URLs (repeatable), "
                   "e.g. to make them relative to Label Studio's LOCAL_FILES_DOCUMENT_ROOT.")
@user_errors
def labels_export(fmt: str, output: str, limit: int | None, order: str, job_id: int | None,
                  path_prefixes: tuple[str, ...]) -> None:
    """Write the annotated faces as labelling tasks, most uncertain (or most disputed) first."""
    from annotator.labels.exporting import write_label_studio
    from annotator.labels.label_studio import parse_path_prefix

    prefixes = [parse_path_prefix(text) for text in path_prefixes]
    with open_database(load_settings())() as session:
        written = write_label_studio(session, output, job_id=job_id, limit=limit, prefixes=prefixes,
                                     order=order)
    click.echo(f"Wrote {written.count} tasks to {written.tasks} and the labelling config to {written.config}.")


@labels.command("suspects")
@click.option("--attribute", "attributes", multiple=True, metavar="NAME",
              help="Check the labels of this attribute only (repeatable): gender, eyes, mouth, background_mean. "
                   "Default: every labelled one.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the N most suspicious labels.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (csv defaults to standard output; label-studio needs it, and writes its "
                   "labelling config next to it).")
@click.option("--format", "fmt", type=click.Choice(["csv", "label-studio"]), default="csv", show_default=True,
              help="csv: rank, face, label, out-of-fold prediction, score, source; label-studio: review tasks "
                   "with the label pre-filled, most suspicious first.")
@click.option("--folds", type=click.IntRange(2, 10), default=3, show_default=True,
              help="Models trained per attribute, each predicting the labels it did not see.")
@click.option("--epochs", type=click.IntRange(1), default=40, show_default=True,
              help="Most epochs per model (the seed recipe; early stopping usually ends sooner).")
@click.option("--seed", type=int, default=112, show_default=True, help="Seed of the folds and the weights.")
@click.option("--path-prefix", "path_prefixes", multiple=True, metavar="OLD=NEW",
              help="label-studio: rewrite image paths starting with OLD to start with NEW (repeatable).")
@user_errors
def labels_suspects(attributes: tuple[str, ...], limit: int | None, output: Path | None, fmt: str, folds: int,
                    epochs: int, seed: int, path_prefixes: tuple[str, ...]) -> None:
    """Rank the labelled faces by how likely each label is wrong (k-fold training, cleanlab's label quality)."""
    import sys
    import time

    from annotator.labels.label_studio import parse_path_prefix
    from annotator.labels.review import write_suspects
    from annotator.labels.suspects import find_suspects
    from db.session import transaction

    if fmt == "label-studio" and output is None:
        raise click.UsageError("--format label-studio writes a tasks file and its labelling config: give -o FILE.")
    prefixes = [parse_path_prefix(text) for text in path_prefixes]
    started = time.monotonic()
    with transaction(open_database(load_settings())) as session:  # stores perceptual hashes it had to compute
        suspects = find_suspects(session, attributes, folds=folds, epochs=epochs, seed=seed,
                                 echo=lambda line: click.echo(line, err=True))
    shown = suspects[:limit]
    written = write_suspects(shown, fmt, output, sys.stdout, prefixes)
    minutes = (time.monotonic() - started) / 60
    where = f" to {', '.join(str(p) for p in written)}" if written else ""
    click.echo(f"Ranked {len(suspects)} labels in {minutes:.1f} min; wrote the {len(shown)} most suspicious{where}.",
               err=True)
