"""``train``: a new model version trained on a labelled data set with the seed recipe."""

from __future__ import annotations

import time
from pathlib import Path

import click

from annotator.cli.common import load_settings, open_database, user_errors
from annotator.errors import AnnotateError


def _class_map(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, float]:
    from annotator.training.datasets import parse_class_map

    try:
        return parse_class_map(value)
    except AnnotateError as error:
        raise click.BadParameter(str(error)) from None


@click.command()
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
@click.option("--group-by", type=click.Choice(["person"]), default=None,
              help="person: find the people with dlib's face descriptor (pip install 'annotate[people]', about "
                   "0.2 s a face) and keep each wholly in train, validation or test.")
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
          force: bool, group_by: str | None) -> None:
    """Train model NAME on a labelled data set with the seed recipe; store it as a new version with its report."""
    from annotator.models.specs import OutputKind, get_spec
    from annotator.training.run import (
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
    settings = load_settings()
    factory = open_database(settings)  # before training: a database problem must not cost a finished run
    options = TrainOptions(label_column, class_map, crop_level, group_column, epochs, batch_size, val_split, seed,
                           backbone_weights, test_split, augment, group_by)
    if group_by is not None and group_column is not None:
        raise click.UsageError("--group-by person and --group-column both set the groups; choose one.")
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
        registered = register_trained(session, settings.home, trained.result,
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
