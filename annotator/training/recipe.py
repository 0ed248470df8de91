"""Train a model of the chain with the seed recipe and judge it with the seed report (imports TensorFlow)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from annotator.models.architectures import build_model
from annotator.models.crops import crop_batch
from annotator.models.seed_report import (
    COLLAPSE_SAMPLES,
    BinaryReport,
    GenderReport,
    RegressorReport,
    gender_report,
    regressor_report,
)
from annotator.models.specs import ModelSpec, OutputKind

EpochCallback = Callable[[int, dict[str, float]], None]
REPORT_BATCH = 256


@dataclass
class TrainingResult:
    """A trained model with its seed report and history."""

    spec: ModelSpec
    model: keras.Model
    report: RegressorReport | GenderReport | BinaryReport
    history: dict[str, list[float]]
    epochs_run: int


class EpochProgress(keras.callbacks.Callback):
    """Calls ``on_epoch(epoch, logs)`` after every epoch, epochs counted from 1."""

    def __init__(self, on_epoch: EpochCallback) -> None:
        super().__init__()
        self.on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.on_epoch(epoch + 1, {k: float(v) for k, v in (logs or {}).items()})


def _outputs(model: keras.Model, inputs: np.ndarray | list[np.ndarray]) -> np.ndarray:
    arrays = inputs if isinstance(inputs, list) else [inputs]
    parts = [model([x[i : i + REPORT_BATCH] for x in arrays] if len(arrays) > 1 else arrays[0][i : i + REPORT_BATCH],
                   training=False).numpy() for i in range(0, len(arrays[0]), REPORT_BATCH)]
    return np.concatenate(parts)


def model_outputs(model: keras.Model, inputs: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """The model's outputs for ``inputs`` (one array, or one per input of a multi-input model), in batches."""
    return _outputs(model, inputs)


def split_indices(n: int, val_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed``; the last ``val_split`` share is validation."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_split)) if n > 1 else 0
    return order[: n - n_val], order[n - n_val :]


def split_groups(groups: np.ndarray, val_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`split_indices`, but every group (e.g. a person) lands wholly in train or in validation.

    Groups are shuffled with ``seed`` and moved to validation until it holds ``val_split`` of the rows.
    """
    names, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    if len(names) < 2:
        raise ValueError(f"A grouped split needs at least 2 groups. Received: {len(names)} group(s).")
    sizes = np.bincount(inverse)
    wanted = max(1, round(len(inverse) * val_split))
    held_out: list[int] = []
    for group in np.random.default_rng(seed).permutation(len(names)):
        if sum(sizes[held_out]) >= wanted or len(held_out) == len(names) - 1:
            break
        held_out.append(int(group))
    in_val = np.isin(inverse, held_out)
    order = np.random.default_rng(seed).permutation(len(inverse))
    return order[~in_val[order]], order[in_val[order]]


def duplicate_groups(images: np.ndarray) -> np.ndarray:
    """One id per distinct image: rows whose model inputs are identical at 8 bits share an id.

    Without person ids, this at least keeps the same file saved twice out of both sides of a split.
    """
    pixels = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8).reshape(len(images), -1)
    keys = [hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest() for row in pixels]
    return np.asarray(keys)


def split_three(n: int, val_split: float, test_split: float, seed: int, groups: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test rows; both shares are of all ``n`` rows, groups never straddle a border.

    The test rows are drawn first, so the validation split (which early stopping and the learning rate watch)
    never touches them; ``test_split=0`` gives an empty test split and the two-way split of before.
    """
    def split(rows: np.ndarray, share: float, salt: int) -> tuple[np.ndarray, np.ndarray]:
        if groups is None:
            keep, held = split_indices(len(rows), share, seed + salt)
        else:
            keep, held = split_groups(groups[rows], share, seed + salt)
        return rows[keep], rows[held]

    if not 0 <= test_split < 1 or val_split + test_split >= 1:
        raise ValueError(f"Validation and test shares must leave rows to train on. Received: val_split={val_split}, "
                         f"test_split={test_split}.")
    rows = np.arange(n)
    if test_split > 0:
        rows, test = split(rows, test_split, 0)
    else:
        test = np.zeros(0, int)
    # Validation takes ``val_split`` of all rows, i.e. a larger share of what the test split left.
    train, val = split(rows, val_split / (1 - test_split), 0 if test_split == 0 else 1)
    return train, val, test


def train_model(spec: ModelSpec, faces: np.ndarray, gender: np.ndarray, targets: np.ndarray | None = None, *,
                epochs: int = 40, batch_size: int = 32, val_split: float = 0.1, seed: int = 112,
                learning_rate: float = 1e-3, on_epoch: EpochCallback | None = None) -> TrainingResult:
    """Train ``spec`` on canonical ``faces`` with the seed recipe.

    ``gender`` holds true genders (0 male, 1 female); regressors get them one-hot as their gender input while
    training (the chain feeds the gender model's probabilities at inference). ``targets`` are the regressor's
    labels in 0..1; the gender model learns ``gender`` itself.
    """
    if spec.output is not OutputKind.GENDER_SOFTMAX and targets is None:
        raise ValueError(f"Model {spec.name!r} needs targets. Received: targets=None.")
    labels = gender if spec.output is OutputKind.GENDER_SOFTMAX else targets
    return train_on_inputs(spec, crop_batch(faces, spec), np.asarray(labels), gender=gender, epochs=epochs,
                           batch_size=batch_size, val_split=val_split, seed=seed, learning_rate=learning_rate,
                           on_epoch=on_epoch)


def train_on_inputs(spec: ModelSpec, images: np.ndarray, labels: np.ndarray, *, gender: np.ndarray | None = None,
                    groups: np.ndarray | None = None, epochs: int = 40, batch_size: int = 32,
                    val_split: float = 0.1, seed: int = 112, learning_rate: float = 1e-3,
                    test_split: float | None = None, augment: bool | None = None,
                    on_epoch: EpochCallback | None = None) -> TrainingResult:
    """Train ``spec`` on ready model inputs (crops at ``spec.input_shape``) with the seed recipe.

    ``labels`` are genders for the gender model (0 male, 1 female, or a teacher's female probability as a soft
    target), targets in 0..1 for a regressor.
    ``gender`` (0/1 per row) is the regressor's gender input (one-hot) and splits its baseline; None means
    unknown: the regressor gets a neutral 0.5/0.5 and the baseline has one group. ``groups`` (e.g. person
    ids) keep each group wholly in train, validation or test; without them identical images are grouped.
    ``test_split`` and ``augment`` default to the spec's (gender: 15% test, augmented; others: neither).
    """
    keras.utils.set_random_seed(seed)
    test_split = spec.test_split if test_split is None else test_split
    augment = spec.augment if augment is None else augment
    train, val, test = split_three(len(images), val_split, test_split, seed,
                                   duplicate_groups(images) if groups is None else np.asarray(groups))
    model = build_model(spec)
    is_gender = spec.output is OutputKind.GENDER_SOFTMAX
    known = gender is not None
    groups_of = np.asarray(gender).astype(int) if known else np.zeros(len(images), int)
    if is_gender:
        # [male, female] targets: a label is one-hot, a teacher's female probability a soft target (distillation);
        # categorical cross-entropy is the same loss as sparse for one-hot targets. Reports use the hard gender.
        female = np.asarray(labels, np.float32)
        inputs, y = [images], np.stack([1.0 - female, female], axis=1)
        hard = (female >= 0.5).astype(int)
        model.compile(keras.optimizers.Adam(learning_rate), "categorical_crossentropy", metrics=["accuracy"])
    else:
        gender_input = (np.eye(2, dtype=np.float32)[groups_of] if known
                        else np.full((len(images), 2), 0.5, np.float32))
        inputs, y = [images, gender_input], np.asarray(labels, np.float32)
        model.compile(keras.optimizers.Adam(learning_rate), "mse")
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=spec.lr_patience),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=spec.stop_patience, restore_best_weights=True),
    ]
    if on_epoch is not None:
        callbacks.append(EpochProgress(on_epoch))

    def pick(rows: np.ndarray) -> Any:
        return [x[rows] for x in inputs] if len(inputs) > 1 else inputs[0][rows]

    if augment:
        from annotator.training.augmentation import augmented_dataset

        data: Any = augmented_dataset([x[train] for x in inputs], y[train], batch_size=batch_size, seed=seed)
        history = model.fit(data, validation_data=(pick(val), y[val]), epochs=epochs, callbacks=callbacks,
                            verbose=0, shuffle=False)  # the data set shuffles itself
    else:
        history = model.fit(pick(train), y[train], validation_data=(pick(val), y[val]), epochs=epochs,
                            batch_size=batch_size, callbacks=callbacks, verbose=0, shuffle=True)
    first = _outputs(model, pick(train[:COLLAPSE_SAMPLES]))
    val_outputs = _outputs(model, pick(val))
    if is_gender:
        test_probs = _outputs(model, pick(test)) if len(test) else None
        report: RegressorReport | GenderReport = gender_report(
            val_gender=hard[val], val_probs=val_outputs, first_probs=first, n_train=len(train),
            test_gender=hard[test] if len(test) else None, test_probs=test_probs)
    else:
        report = regressor_report(train_targets=y[train], train_gender=groups_of[train], val_targets=y[val],
                                  val_gender=groups_of[val], val_outputs=val_outputs, first_outputs=first)
    logs = {k: [float(v) for v in values] for k, values in history.history.items()}
    return TrainingResult(spec, model, report, logs, len(history.epoch))
