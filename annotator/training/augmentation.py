"""On-the-fly augmentation of a chain model's training images (imports TensorFlow).

Small face sets overfit quickly; a mirrored, slightly moved, zoomed or lit face is still the same face with
the same label, so every epoch sees fresh random copies. Only training batches are augmented: validation,
test and inference see the images as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class FaceAugmentation:
    """Ranges of the random changes, on images in 0..1 (aligned faces: small geometric changes only)."""

    flip: bool = True  # faces are near-symmetric; the label never depends on the side
    shift: float = 0.05  # +- share of the side (3 px of 60): alignment is never exact
    zoom: float = 0.08  # +- share of the side: faces are aligned at slightly different scales
    brightness: float = 0.1  # +- added delta
    contrast: float = 0.2  # factor drawn from 1 +- contrast


FACE_AUGMENTATION = FaceAugmentation()


def augmentation_layers(params: FaceAugmentation = FACE_AUGMENTATION, seed: int = 0) -> keras.Sequential:
    """Keras preprocessing layers that draw one random change per image, seeded for reproducible runs."""
    steps: list[keras.layers.Layer] = []
    if params.flip:
        steps.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if params.shift > 0:
        steps.append(keras.layers.RandomTranslation(params.shift, params.shift, fill_mode="reflect", seed=seed + 1))
    if params.zoom > 0:
        steps.append(keras.layers.RandomZoom(params.zoom, fill_mode="reflect", seed=seed + 2))
    if params.brightness > 0:
        steps.append(keras.layers.RandomBrightness(params.brightness, value_range=(0.0, 1.0), seed=seed + 3))
    if params.contrast > 0:
        steps.append(keras.layers.RandomContrast(params.contrast, seed=seed + 4))
    return keras.Sequential(steps, name="augmentation")


def augmented_dataset(inputs: list[np.ndarray], labels: np.ndarray, *, batch_size: int, seed: int,
                      params: FaceAugmentation = FACE_AUGMENTATION) -> tf.data.Dataset:
    """Shuffled batches whose first input (the image) is augmented afresh every epoch; other inputs pass as is."""
    layers = augmentation_layers(params, seed)

    def change(features: tuple[tf.Tensor, ...], y: tf.Tensor) -> tuple[tuple[tf.Tensor, ...], tf.Tensor]:
        # Batched, so each image gets its own draw; clipped since contrast/brightness may leave 0..1.
        image = tf.clip_by_value(layers(features[0], training=True), 0.0, 1.0)
        return (image, *features[1:]), y

    dataset = tf.data.Dataset.from_tensor_slices((tuple(inputs), labels))
    dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    dataset = dataset.map(change, num_parallel_calls=tf.data.AUTOTUNE)
    # A one-input model takes a bare tensor, not a 1-tuple.
    if len(inputs) == 1:
        dataset = dataset.map(lambda features, y: (features[0], y))
    return dataset.prefetch(tf.data.AUTOTUNE)
