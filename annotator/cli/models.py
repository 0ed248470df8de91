"""``models list|activate|import|compare|demo|bootstrap``: the model store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from annotator.cli.common import face_options, load_settings, open_database, user_errors

if TYPE_CHECKING:
    from annotator.faces.modes import FaceOptions


@click.group()
def models() -> None:
    """The model store: list, activate, import, compare, train starter models, bootstrap from teachers."""


@models.command("list")
@user_errors
def models_list() -> None:
    """List stored model versions; '*' marks the active one of each model."""
    from annotator.models.store import list_versions, model_file

    settings = load_settings()
    factory = open_database(settings)
    with factory() as session:
        versions = list_versions(session)
    if not versions:
        click.echo("No models yet. Train the starter models with `annotate models demo`.")
    for version in versions:
        marker = "*" if version.active else " "
        demo = ("  DEMO (generated portraits)" if version.is_demo else
                "  BOOTSTRAPPED (from " + version.metrics["bootstrapped"]["teacher"] + ")"
                if "bootstrapped" in version.metrics else "")
        click.echo(f"{marker} {version.label:<22} {version.created_at:%Y-%m-%d %H:%M}  "
                   f"sha256 {version.sha256[:12]}  {model_file(version, settings.home)}{demo}")


@models.command("activate")
@click.argument("name")
@click.argument("version", type=int)
@user_errors
def models_activate(name: str, version: int) -> None:
    """Make version VERSION of model NAME the one new jobs run."""
    from annotator.models.store import activate_version
    from db.session import transaction

    factory = open_database(load_settings())
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
    from annotator.models.importing import import_into_store
    from db.session import transaction

    settings = load_settings()
    with transaction(open_database(settings)) as session:
        record = import_into_store(session, settings.home, name, path, channel_order=channel_order.upper(),
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
    from annotator.models.comparison import compare_versions

    settings = load_settings()
    with open_database(settings)() as session:
        comparison = compare_versions(session, name, (v1, v2), labels_csv, home=settings.home,
                                      neutral_gender=neutral_gender)
    click.echo(comparison.format())


@models.command("demo")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated portraits.")
@user_errors
def models_demo(seed: int) -> None:
    """Train starter models on generated portraits (DEMO models: not for real photos) and activate them."""
    from annotator.tf_runtime import import_tensorflow

    import_tensorflow()
    from annotator.training.demo import register_demo_models, train_demo_models
    from db.session import transaction

    settings = load_settings()
    factory = open_database(settings)
    click.echo("Training DEMO models on generated portraits; they show the pipeline works, not real accuracy.")
    results = train_demo_models(seed=seed, echo=click.echo)
    with transaction(factory) as session:
        for label in register_demo_models(session, settings.home, results, seed=seed):
            click.echo(f"Registered and activated {label} (DEMO).")


@models.command("bootstrap")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--activate", is_flag=True, help="Make the bootstrapped versions the ones new jobs run (a collapsed "
                                               "model is registered but not activated).")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Most epochs of every model [default: the seed's 40; mouth 80, background_mean 16].")
@click.option("--seed", type=int, default=112, show_default=True, help="Seed of the splits and initial weights.")
@face_options("detect: find and align every face of ordinary photos. aligned: each image already is one "
              "aligned face (no detector).")
@user_errors
def models_bootstrap(folder: Path, activate: bool, epochs: int | None, seed: int, faces: FaceOptions) -> None:
    """Train all four chain models on teacher values of the faces under FOLDER (no labels needed).

    Runs the offline teachers where no teacher value is stored yet (`annotate teach`), then trains gender, eyes,
    mouth and background_mean with the seed architectures and recipe, prints each seed report and registers the
    versions as bootstrapped. Needs `pip install 'annotate[teachers]'`.
    """
    from annotator.teachers.bootstrap import BootstrapOptions, bootstrap_chain

    settings = load_settings()
    factory = open_database(settings)
    result = bootstrap_chain(factory, settings, folder, faces,
                             BootstrapOptions(epochs=epochs, seed=seed, activate=activate), click.echo)
    for registration in result.registered:
        state = ("active" if registration.activated else
                 "COLLAPSED, not activated" if registration.collapsed and activate else
                 f"not active; `annotate models activate {registration.label.replace('@', ' ')}` makes it so")
        click.echo(f"Registered {registration.label} (bootstrapped from teachers): {state}.")
