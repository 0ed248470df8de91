"""The identity model (the 'Face' seed): "is this person X" on 224x224 faces (imports TensorFlow).

A frozen MobileNetV2 backbone whose ImageNet weights the user supplies (nothing is downloaded), global
average pooling and one trainable Dense(1, sigmoid): 1,281 parameters. Trained as the seed did: Adam 1e-3,
binary cross-entropy, early stopping with patience 5, an 80/20 split with seed 112, and a tf.data pipeline
``cache -> augment -> prefetch`` with the seed's augmentation (the seed found that without it even people
seen in training were missed on new photos).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import tensorflow as tf

from annotator.errors import BackboneWeightsError
from annotator.models.seed_report import COLLAPSE_SAMPLES, binary_report
from annotator.models.specs import IDENTITY, ModelSpec
from annotator.training.recipe import (
    EpochCallback,
    EpochProgress,
    TrainingResult,
    split_groups,
    split_indices,
)

WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
WEIGHTS_HINT = (
    f"Download the Keras ImageNet weights of MobileNetV2 without its top, {WEIGHTS_FILE} (from "
    "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/, or copy "
    f"~/.keras/models/{WEIGHTS_FILE} from a machine where `keras.applications.MobileNetV2(include_top=False)` "
    "has run) and pass it with --backbone-weights FILE."
)
# Weights of MobileNetV2 without its top, by width multiplier (Keras' published widths up to 1.0; wider ones
# end in more than 1,280 channels, so their head would not be the seed's 1,281 parameters).
BACKBONE_SIZES = {1.0: 2_257_984, 0.35: 410_208, 0.5: 706_224, 0.75: 1_382_064}
IDENTITY_VAL_SPLIT = 0.2
BACKBONE_NAME = "backbone"


@dataclass(frozen=True)
class Augmentation:
    """The seed's augmentation ranges, on images in 0..1."""

    flip: bool = True
    brightness: float = 0.15  # added delta, +-
    contrast: tuple[float, float] = (0.7, 1.3)
    hue: float = 0.05  # +-, in turns of the colour wheel
    saturation: tuple[float, float] = (0.7, 2.0)
    noise: float = 0.08  # standard deviation of added Gaussian noise


SEED_AUGMENTATION = Augmentation()
NO_AUGMENTATION = Augmentation(flip=False, brightness=0.0, contrast=(1.0, 1.0), hue=0.0, saturation=(1.0, 1.0),
                               noise=0.0)


def augment(image: tf.Tensor, seed: tf.Tensor, params: Augmentation = SEED_AUGMENTATION) -> tf.Tensor:
    """One randomly augmented copy of ``image`` (H, W, 3 in 0..1); the same ``seed`` gives the same copy."""
    seeds = tf.random.experimental.stateless_split(seed, 6)
    if params.flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    if params.brightness > 0:
        image = tf.image.stateless_random_brightness(image, params.brightness, seeds[1])
    if params.contrast[0] < params.contrast[1]:
        image = tf.image.stateless_random_contrast(image, *params.contrast, seeds[2])
    if params.hue > 0:
        image = tf.image.stateless_random_hue(image, params.hue, seeds[3])
    if params.saturation[0] < params.saturation[1]:
        image = tf.image.stateless_random_saturation(image, *params.saturation, seeds[4])
    if params.noise > 0:
        image = image + tf.random.stateless_normal(tf.shape(image), seeds[5], stddev=params.noise)
    return tf.clip_by_value(image, 0.0, 1.0)


def _as_float(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(image, tf.float32) / 255.0


def training_dataset(images: np.ndarray, labels: np.ndarray, *, batch_size: int, seed: int,
                     params: Augmentation = SEED_AUGMENTATION) -> tf.data.Dataset:
    """The seed pipeline: cache -> shuffle -> augment (fresh each epoch) -> batch -> prefetch.

    ``images`` are uint8 (4x less memory in the cache than float32); augmentation runs after the cache, so
    every epoch sees new random copies.
    """
    generator = tf.random.Generator.from_seed(seed)

    def augmented(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return augment(_as_float(image), generator.make_seeds(1)[:, 0], params), label

    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.float32))).cache()
    dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(images: np.ndarray, labels: np.ndarray, *, batch_size: int) -> tf.data.Dataset:
    """Validation data as the model sees it at inference: no augmentation, cached and prefetched."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.float32)))
    return dataset.map(lambda image, label: (_as_float(image), label)).batch(batch_size).cache() \
        .prefetch(tf.data.AUTOTUNE)


def _stored_values(path: Path) -> int:
    """How many numbers a Keras weights file holds (legacy .h5 or Keras 3 .weights.h5), or -1 if unreadable."""
    total = 0

    def count(_: str, item: object) -> None:
        nonlocal total
        if isinstance(item, h5py.Dataset) and item.dtype.kind == "f":
            total += int(item.size)

    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(count)
    except OSError:
        return -1
    return total


def load_backbone(weights: Path | None, spec: ModelSpec = IDENTITY) -> keras.Model:
    """A frozen MobileNetV2 (no top, global average pooling) with the weights in ``weights``."""
    if weights is None:
        raise BackboneWeightsError(f"The identity model needs pretrained backbone weights. {WEIGHTS_HINT}")
    if not weights.is_file():
        raise BackboneWeightsError(f"Backbone weights file not found: {weights}. {WEIGHTS_HINT}")
    stored = _stored_values(weights)
    # Keras 3 loads a .weights.h5 of another width with only warnings, so the width is picked by size first.
    alpha = next((a for a, size in BACKBONE_SIZES.items() if size == stored), None)
    if alpha is None:
        what = "is not an HDF5 weights file" if stored < 0 else f"holds {stored:,} weights"
        raise BackboneWeightsError(f"{weights} {what}, which fits no MobileNetV2 without its top (widths "
                                   f"{', '.join(map(str, BACKBONE_SIZES))}). {WEIGHTS_HINT}")
    backbone = keras.applications.MobileNetV2(input_shape=spec.input_shape, alpha=alpha, include_top=False,
                                              weights=None, pooling="avg", name=BACKBONE_NAME)
    try:
        backbone.load_weights(weights)
    except Exception as error:  # noqa: BLE001 - Keras raises ValueError, KeyError or OSError on a misfit
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BackboneWeightsError(f"Cannot load {weights} into MobileNetV2 (width {alpha}): {first}. "
                                   f"{WEIGHTS_HINT}") from None
    backbone.trainable = False
    return backbone


def build_identity_model(backbone: keras.Model, spec: ModelSpec = IDENTITY) -> keras.Model:
    """Faces in 0..1 -> MobileNetV2's [-1, 1] -> frozen backbone -> Dense(1, sigmoid), the only trainable layer."""
    image = keras.Input(shape=spec.input_shape, name="image")
    scaled = keras.layers.Rescaling(2.0, offset=-1.0, name="to_mobilenet_range")(image)
    # training=False keeps the frozen backbone's batch-norm statistics fixed while the head learns.
    features = backbone(scaled, training=False)
    output = keras.layers.Dense(1, activation="sigmoid", name="is_person")(features)
    return keras.Model(image, output, name=spec.name)


def _predict(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([model(_as_float(images[i : i + batch_size]), training=False).numpy()
                           for i in range(0, len(images), batch_size)]) if len(images) else np.zeros((0, 1))


def train_identity(images: np.ndarray, labels: np.ndarray, *, backbone_weights: Path | None,
                   groups: np.ndarray | None = None, epochs: int = 40, batch_size: int = 32,
                   val_split: float = IDENTITY_VAL_SPLIT, seed: int = 112, learning_rate: float = 1e-3,
                   augmentation: Augmentation = SEED_AUGMENTATION,
                   on_epoch: EpochCallback | None = None) -> TrainingResult:
    """Train the identity head on 224x224 faces in 0..1 (labels 1 = the person) and report on the held-out 20%."""
    keras.utils.set_random_seed(seed)
    model = build_identity_model(load_backbone(backbone_weights))
    pixels = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
    labels = np.asarray(labels, np.float32)
    train, val = (split_indices(len(pixels), val_split, seed) if groups is None
                  else split_groups(groups, val_split, seed))
    model.compile(keras.optimizers.Adam(learning_rate), "binary_crossentropy", metrics=["accuracy"])
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=IDENTITY.stop_patience,
                                      restore_best_weights=True)]
    if on_epoch is not None:
        callbacks.append(EpochProgress(on_epoch))
    history = model.fit(
        training_dataset(pixels[train], labels[train], batch_size=batch_size, seed=seed, params=augmentation),
        validation_data=evaluation_dataset(pixels[val], labels[val], batch_size=batch_size),
        epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)  # the dataset shuffles itself
    report = binary_report(val_labels=labels[val], val_outputs=_predict(model, pixels[val], batch_size),
                           first_outputs=_predict(model, pixels[train[:COLLAPSE_SAMPLES]], batch_size),
                           n_train=len(train))
    logs: dict[str, Any] = {k: [float(v) for v in values] for k, values in history.history.items()}
    return TrainingResult(IDENTITY, model, report, logs, len(history.epoch))


def trainable_parameters(model: keras.Model) -> int:
    """How many weights training changes (1,281 for the identity head on a 1,280-channel backbone)."""
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))
