"""The whole chain as one compiled TensorFlow function per batch.

Faces go in as they travel (uint8 RGB, or float32 in 0..1 for callers that hold those); scaling to 0..1, every
model's crop and resize, the BGR reversal of imported seed models, gender and then every regressor fed the
gender probabilities all run inside one graph: one host-to-device copy on a GPU, no Python between models.
The crops are the ones :func:`annotator.models.crops.crop_batch` cuts in NumPy (equal to within 1e-5).

On a host without a GPU, uint8 faces through a float32 chain run on XNNPACK instead: the same function,
converted to TensorFlow Lite (:mod:`annotator.models.lite`).

``precision`` ``bfloat16`` or ``float16`` runs the models under Keras' mixed precision (weights kept in float32,
matrix products in the smaller format, outputs returned as float32); ``float32`` runs them as stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from annotator.models.lite import LiteChain, lite_chain, tflite_model, xnnpack_applies
from annotator.models.specs import FACE_SIZE, ModelSpec, OutputKind
from annotator.settings import DEFAULT_PRECISION
from annotator.tf_runtime import import_tensorflow

INFERENCE_BATCH = 256
"""Faces per call of the compiled function."""


def crop_tensor(faces: Any, spec: ModelSpec) -> Any:
    """``spec``'s input for float ``faces`` (n, 120, 120, 3) as TensorFlow ops: cut, then area-averaged down by
    whole factors or bilinearly enlarged (half-pixel centres), as :func:`~annotator.models.crops.crop_batch`."""
    tf = import_tensorflow()
    box = spec.crop
    region = faces[:, box.top : box.bottom, box.left : box.right, :]
    height, width = box.shape
    out_h, out_w = spec.input_size
    if (height, width) == (out_h, out_w):
        return region
    if out_h >= height and out_w >= width:
        return tf.image.resize(region, (out_h, out_w), method="bilinear", antialias=False)
    if height % out_h or width % out_w:
        raise ValueError(f"Crop {height}x{width} of model {spec.name!r} is not a whole multiple of its input "
                         f"{out_h}x{out_w}. Received: crop={box}, input_size={spec.input_size}.")
    factor = (height // out_h, width // out_w)
    return tf.nn.avg_pool2d(region, ksize=factor, strides=factor, padding="VALID")


def in_precision(model: Any, precision: str) -> Any:
    """``model`` to run in ``precision``: itself for float32, else a copy under Keras' mixed precision policy."""
    if precision == DEFAULT_PRECISION:
        return model
    import keras

    policy = keras.DTypePolicy(f"mixed_{precision}")

    def clone(layer: Any) -> Any:
        return layer.__class__.from_config({**layer.get_config(), "dtype": policy})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


ChainMember = tuple[ModelSpec, Any, bool]  # spec, Keras model, whether it expects BGR


def _computes_in_float32(model: Any) -> bool:
    return all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers)


def _body(members: Sequence[ChainMember]) -> Callable[..., dict[str, Any]]:
    tf = import_tensorflow()

    def run(faces: Any, gender: Any = None) -> dict[str, Any]:
        outputs = {}
        for spec, model, bgr in members:
            crop = crop_tensor(faces, spec)
            if bgr:  # models trained on OpenCV-read images saw BGR; feeding them RGB swaps red and blue silently
                crop = tf.reverse(crop, axis=[-1])
            if spec.output is OutputKind.GENDER_SOFTMAX:
                gender = tf.cast(model(crop, training=False), tf.float32)
                outputs[spec.name] = gender
                continue
            if spec.takes_gender and gender is None:
                raise ValueError(f"Model {spec.name!r} needs gender probabilities; gender must run first.")
            inputs = [crop, gender] if spec.takes_gender else crop
            outputs[spec.name] = tf.cast(model(inputs, training=False), tf.float32)[:, 0]
        return outputs

    return run


class ChainGraph:
    """The compiled chain of ``members``; with ``gender_given`` its regressors read gender probabilities passed in
    (to run one regressor alone) instead of a gender model's. Uint8 faces run on XNNPACK where
    :mod:`annotator.models.lite` says it applies, unless ``xnnpack`` is False; anything else on TensorFlow."""

    def __init__(self, members: Sequence[ChainMember], *, gender_given: bool = False, xnnpack: bool = True) -> None:
        self.tf = import_tensorflow()
        self.members, self.gender_given = list(members), gender_given
        self.body = _body(self.members)
        self._functions: dict[str, Any] = {}
        self._lite: LiteChain | None = None
        self._xnnpack, self._lite_tried = xnnpack, False
        self._lite_lock = threading.Lock()

    @property
    def engine(self) -> str:
        """What runs uint8 faces: ``xnnpack`` or ``tensorflow`` (the conversion is tried on first asking)."""
        return "tensorflow" if self._lite_chain() is None else "xnnpack"

    def _function(self, dtype: Any) -> Any:
        tf = self.tf
        if dtype.name not in self._functions:
            faces = tf.TensorSpec((None, FACE_SIZE, FACE_SIZE, 3), dtype)
            extra = [tf.TensorSpec((None, 2), tf.float32)] if self.gender_given else []
            scale = dtype == tf.uint8

            @tf.function(input_signature=[faces, *extra], autograph=False)  # plain Python: nothing to convert
            def call(faces: Any, *gender: Any) -> dict[str, Any]:
                floats = tf.cast(faces, tf.float32)
                return self.body(floats / 255.0 if scale else floats, *gender)

            self._functions[dtype.name] = call
        return self._functions[dtype.name]

    def lite_model(self) -> bytes:
        """The function of uint8 faces as a TensorFlow Lite model, for XNNPACK."""
        models = [model for _, model, _ in self.members]
        return tflite_model(self._function(self.tf.uint8).get_concrete_function(), models)

    def _lite_chain(self) -> LiteChain | None:
        """The uint8 function run by XNNPACK (:mod:`annotator.models.lite`), where that applies."""
        with self._lite_lock:
            if not self._lite_tried:
                self._lite_tried = True
                models = [model for _, model, _ in self.members]
                if self._xnnpack and not self.gender_given and all(map(_computes_in_float32, models)) \
                        and xnnpack_applies():
                    self._lite = lite_chain(None, self.lite_model)
            return self._lite

    def _runner(self, dtype: Any) -> Callable[..., dict[str, np.ndarray]]:
        lite_chain = self._lite_chain() if dtype == self.tf.uint8 else None
        if lite_chain is not None:
            return lite_chain
        function = self._function(dtype)
        return lambda *inputs: {name: value.numpy() for name, value in function(*inputs).items()}

    def __call__(self, faces: np.ndarray, gender: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Every member's outputs for ``faces`` (n, 120, 120, 3) uint8, or float in 0..1."""
        faces = np.asarray(faces)
        dtype = self.tf.uint8 if faces.dtype == np.uint8 else self.tf.float32
        if faces.dtype != np.uint8:
            faces = faces.astype(np.float32, copy=False)
        if not len(faces):
            return {spec.name: np.zeros((0, 2) if spec.output is OutputKind.GENDER_SOFTMAX else (0,), np.float32)
                    for spec, _, _ in self.members}
        extra = [np.asarray(gender, np.float32)] if self.gender_given else []
        run = self._runner(dtype)
        parts = [run(faces[i : i + INFERENCE_BATCH], *(e[i : i + INFERENCE_BATCH] for e in extra))
                 for i in range(0, len(faces), INFERENCE_BATCH)]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
