"""Keras architectures built from a :class:`~annotator.models.specs.ModelSpec` (imports TensorFlow)."""

from __future__ import annotations

import keras
from keras import layers, regularizers

from annotator.models.specs import POOL, ModelSpec, OutputKind

GENDER_INPUT = "gender_probs"
IMAGE_INPUT = "image"
L2 = 1e-3


def _conv_stack(image: keras.KerasTensor, spec: ModelSpec) -> keras.KerasTensor:
    # The seeds reuse one 2x2 max-pool layer object; a pool layer has no weights, so sharing it is harmless.
    pool = layers.MaxPooling2D(pool_size=2, name="pool")
    x = image
    for index, layer in enumerate(spec.conv_layers):
        if layer == POOL:
            x = pool(x)
        else:
            x = layers.Conv2D(int(layer), 3, padding="valid", activation="relu", name=f"conv_{index}")(x)
    return layers.Flatten(name="flatten")(x)


def build_model(spec: ModelSpec) -> keras.Model:
    """A fresh, untrained model for ``spec`` (regressors take ``[image, gender_probs]``)."""
    if spec.backbone is not None:
        raise ValueError(f"Model {spec.name!r} sits on a pretrained {spec.backbone} backbone; train it with "
                         f"`annotate train {spec.name} --backbone-weights FILE`. Received: backbone={spec.backbone!r}.")
    image = keras.Input(shape=spec.input_shape, name=IMAGE_INPUT)
    x = _conv_stack(image, spec)
    first, second = spec.dense_units
    if spec.output is OutputKind.GENDER_SOFTMAX:
        x = layers.Dense(first, activation="relu", name="dense_0")(x)
        x = layers.Dropout(0.25)(x)
        x = layers.Dense(second, activation="relu", name="dense_1")(x)
        output = layers.Dense(2, activation="softmax", name="dense_final")(x)
        return keras.Model(image, output, name=spec.name)

    gender = keras.Input(shape=(2,), name=GENDER_INPUT)
    regularizer = regularizers.l2(L2)
    x = layers.Dense(first, kernel_regularizer=regularizer, name="dense_0")(x)
    x = layers.LeakyReLU(name="leaky_0")(x)
    x = layers.Concatenate(name="with_gender")([x, gender])
    x = layers.Dropout(0.25)(x)
    x = layers.Dense(second, kernel_regularizer=regularizer, name="dense_1")(x)
    x = layers.LeakyReLU(name="leaky_1")(x)
    x = layers.Dropout(0.25)(x)
    output = layers.Dense(1, activation="sigmoid", kernel_regularizer=regularizer, name="dense_final")(x)
    return keras.Model([image, gender], output, name=spec.name)
