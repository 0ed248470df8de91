"""What `annotate train` does: read a data set, train one model with the seed recipe, register it with its report.

TensorFlow is imported by the functions that train, never by importing this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from annotator.faces.embedding import DEFAULT_PERSON_THRESHOLD
from annotator.models.specs import ModelSpec, OutputKind
from annotator.training.datasets import TrainingSet, load_training_set

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from annotator.training.recipe import TrainingResult
    from db.models import ModelVersion

Echo = Callable[[str], None]
SHOWN_SKIPS = 5
DEFAULT_VAL_SPLIT = 0.1  # the chain's seed recipe; the identity seed held out 20%


@dataclass(frozen=True)
class TrainOptions:
    """How to read the data set and how to train, as given on the command line."""

    label_column: str | None = None
    class_map: dict[str, float] = field(default_factory=dict)
    crop_level: bool = False
    group_column: str | None = None
    epochs: int = 40
    batch_size: int = 32
    val_split: float | None = None  # None: the spec's own (0.1 for the chain, 0.2 for identity)
    seed: int = 112
    backbone_weights: Path | None = None
    test_split: float | None = None  # None: the spec's own (gender 0.15, others 0)
    augment: bool | None = None  # None: the spec's own (gender on, others off)
    group_by: str | None = None  # "person": groups are people found by dlib's face descriptor


@dataclass(frozen=True)
class Trained:
    """A trained model with the data set it learned from."""

    data: TrainingSet
    result: TrainingResult


@dataclass(frozen=True)
class Registration:
    """The stored version and whether it was activated."""

    label: str
    version: int
    activated: bool
    collapsed: bool


def val_split_for(spec: ModelSpec, options: TrainOptions) -> float:
    """The validation share: the one asked for, else the seed's for this model."""
    if options.val_split is not None:
        return options.val_split
    from annotator.training.identity import IDENTITY_VAL_SPLIT

    return IDENTITY_VAL_SPLIT if spec.backbone else DEFAULT_VAL_SPLIT


def test_split_for(spec: ModelSpec, options: TrainOptions) -> float:
    """The test share: the one asked for, else the spec's (identity keeps its seed's two-way split)."""
    if spec.backbone:
        return 0.0
    return spec.test_split if options.test_split is None else options.test_split


def augment_for(spec: ModelSpec, options: TrainOptions) -> bool:
    """Whether training images are augmented: as asked, else the spec's default (identity: its own seed's)."""
    return spec.augment if options.augment is None else options.augment


def describe_data(data: TrainingSet, spec: ModelSpec, options: TrainOptions) -> list[str]:
    """Lines telling the user what was read: rows used, skipped images, gender input, split."""
    rows = data.rows
    crop_level = ", crop-level images" if options.crop_level else ""
    lines = [(f"{spec.name}: {len(data.labels)} usable rows from {rows.source} ({rows.layout} layout, "
              f"label column {rows.label_column!r}{crop_level})")]
    if data.skipped:
        shown = "; ".join(f"{path} ({reason})" for path, reason in data.skipped[:SHOWN_SKIPS])
        more = f"; and {len(data.skipped) - SHOWN_SKIPS} more" if len(data.skipped) > SHOWN_SKIPS else ""
        lines.append(f"  skipped {len(data.skipped)} rows whose image could not be decoded: {shown}{more}")
    if rows.unlabelled:
        lines.append(f"  skipped {rows.unlabelled} rows with an empty {rows.label_column!r}")
    if spec.output is OutputKind.GENDER_SOFTMAX:
        males = int((data.labels == 0).sum())
        lines.append(f"  classes: male {males}, female {len(data.labels) - males}")
    elif spec.binary:
        people = int((data.labels == 1).sum())
        lines.append(f"  classes: person {people}, other {len(data.labels) - people}")
    if spec.takes_gender:
        lines.append("  gender input: true gender from the export's female_prob (one-hot); baseline per gender"
                     if data.gender is not None else
                     "  gender input: neutral 0.5/0.5 (no gender in the data); the baseline is one group")
    split, test = val_split_for(spec, options), test_split_for(spec, options)
    held = f"{split:.0%} held out" + (f", test {test:.0%} held out (never used to pick the epoch)" if test else "")
    lines.append(f"  validation: {held}, " + (
        f"whole people (faces whose dlib descriptors lie within {DEFAULT_PERSON_THRESHOLD:g}: "
        f"{_people_with_several_faces(data.groups)} people with several faces; seed {options.seed})"
        if options.group_by == "person" and data.groups is not None else
        f"whole groups of {options.group_column!r} (seed {options.seed})" if data.groups is not None else
        f"random rows with identical images kept together (seed {options.seed}); the same person may sit on "
        "both sides, see --group-column and --group-by person"))
    if not spec.backbone:
        lines.append("  augmentation: " + ("flip, shift, zoom, brightness, contrast (training batches only)"
                                           if augment_for(spec, options) else "none"))
    return lines


def _people_with_several_faces(groups: np.ndarray) -> int:
    _, counts = np.unique(groups, return_counts=True)
    return int((counts > 1).sum())


def train_on_data(spec: ModelSpec, data_path: Path, options: TrainOptions, echo: Echo) -> Trained:
    """Read the data set, train ``spec`` on it with the seed recipe, and echo progress and the seed report."""
    from annotator.tf_runtime import import_tensorflow

    import_tensorflow()
    if spec.backbone and options.crop_level:
        raise ValueError(f"--crop-level is for the chain's crops; {spec.name} takes whole aligned faces.")
    if spec.backbone:
        from annotator.training.identity import load_backbone

        load_backbone(options.backbone_weights)  # fail on a missing weights file before decoding any image
    data = load_training_set(data_path, spec, label_column=options.label_column, class_map=options.class_map,
                             crop_level=options.crop_level, group_column=options.group_column)
    if options.group_by == "person":
        from annotator.training.people import with_person_groups

        data = with_person_groups(data, crop_level=options.crop_level, echo=echo)
    for line in describe_data(data, spec, options):
        echo(line)

    def progress(epoch: int, logs: dict[str, float]) -> None:
        shown = "  ".join(f"{key} {value:.4f}" for key, value in logs.items() if key != "learning_rate")
        rate = f"  lr {logs['learning_rate']:.0e}" if "learning_rate" in logs else ""
        echo(f"  epoch {epoch}/{options.epochs}  {shown}{rate}")

    split = val_split_for(spec, options)
    if spec.backbone:
        from annotator.training.identity import train_identity

        result = train_identity(data.images, data.labels, backbone_weights=options.backbone_weights,
                                groups=data.groups, epochs=options.epochs, batch_size=options.batch_size,
                                val_split=split, seed=options.seed, on_epoch=progress)
    else:
        from annotator.training.recipe import train_on_inputs

        result = train_on_inputs(spec, data.images, data.labels, gender=data.gender, groups=data.groups,
                                 epochs=options.epochs, batch_size=options.batch_size, val_split=split,
                                 seed=options.seed, test_split=test_split_for(spec, options),
                                 augment=augment_for(spec, options), on_epoch=progress)
    echo(f"{spec.name} seed report ({result.epochs_run} epochs):\n{result.report.format()}")
    return Trained(data, result)


def training_metrics(trained: Trained, data_path: Path, options: TrainOptions) -> dict[str, Any]:
    """The seed report plus how the model was trained, stored with the version (JSON-ready)."""
    data, result = trained.data, trained.result
    return {
        **result.report.to_dict(),
        "trained_on": str(data_path),
        "layout": data.rows.layout,
        "label_column": data.rows.label_column,
        "class_map": options.class_map,
        "crop_level": options.crop_level,
        "group_column": options.group_column,
        "group_by": options.group_by,
        "rows_used": len(data.labels),
        "rows_skipped": len(data.skipped),
        "rows_unlabelled": data.rows.unlabelled,
        "gender_input": ("none" if not result.spec.takes_gender else
                         "true gender" if data.gender is not None else "neutral 0.5/0.5"),
        "recipe": {"optimizer": "adam", "learning_rate": 1e-3, "epochs": options.epochs,
                   "epochs_run": result.epochs_run, "batch_size": options.batch_size,
                   "val_split": val_split_for(result.spec, options),
                   "test_split": test_split_for(result.spec, options),
                   "augment": augment_for(result.spec, options) and not result.spec.backbone, "seed": options.seed},
        "history": {key: [round(value, 6) for value in values] for key, values in result.history.items()},
    }


def register_trained(session: Session, home: Path, result: TrainingResult, metrics: dict[str, Any], *,
                     activate: bool, force: bool) -> Registration:
    """Store the trained model as the next version; activate it when asked, unless it collapsed (and no force)."""
    from annotator.models.seed_report import json_ready
    from annotator.models.store import register_model

    collapsed = bool(result.report.collapsed)
    activated = activate and (force or not collapsed)
    record: ModelVersion = register_model(session, home, result.spec, result.model, metrics=json_ready(metrics),
                                          activate=activated)
    return Registration(record.label, record.version, activated, collapsed)
