"""Run the gender-then-attributes chain on a batch of canonical faces.

Models are loaded once per process and cached by the ids and hashes of their versions; TensorFlow is imported
only when the first chain is loaded, so importing this module stays cheap and fork-safe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.models.crops import crop_batch
from annotator.models.specs import ModelSpec, OutputKind, get_spec
from annotator.models.store import CHANNEL_ORDER_BGR, CHANNEL_ORDER_RGB, load_keras_model
from annotator.tf_runtime import import_tensorflow
from db.models import ModelVersion

INFERENCE_BATCH = 256

Predictor = Callable[..., np.ndarray]


@dataclass(frozen=True)
class LoadedModel:
    """A model of the chain, ready to run, with the version it came from."""

    spec: ModelSpec
    version_id: int
    label: str
    predict: Predictor
    channel_order: str = CHANNEL_ORDER_RGB


_cache: dict[tuple[tuple[int, str], ...], list[LoadedModel]] = {}


def _compile_predictor(model) -> Predictor:  # type: ignore[no-untyped-def]
    tf = import_tensorflow()

    # A fixed signature with a free batch dimension: one trace serves every chunk size.
    signature = [tf.TensorSpec((None, *tuple(t.shape[1:])), tf.float32) for t in model.inputs]

    @tf.function(input_signature=signature, reduce_retracing=True)
    def call(*inputs):  # type: ignore[no-untyped-def]
        return model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)

    def predict(*arrays: np.ndarray) -> np.ndarray:
        outputs = [call(*(a[i : i + INFERENCE_BATCH] for a in arrays)).numpy()
                   for i in range(0, len(arrays[0]), INFERENCE_BATCH)]
        return np.concatenate(outputs) if outputs else np.zeros((0, *model.outputs[0].shape[1:]), np.float32)

    return predict


def load_chain(versions: Sequence[ModelVersion], home: Path) -> list[LoadedModel]:
    """Load (once per process) the models of ``versions``, given in chain order, from the store under ``home``."""
    key = tuple((v.id, v.sha256) for v in versions)
    if key not in _cache:
        _cache[key] = [
            LoadedModel(get_spec(v.name), v.id, v.label, _compile_predictor(load_keras_model(v, home)),
                        v.input_spec.get("channel_order", CHANNEL_ORDER_RGB))
            for v in versions
        ]
    return _cache[key]


def model_input(model: LoadedModel, faces: np.ndarray) -> np.ndarray:
    """``model``'s image input for RGB ``faces``: its crop, channel-reversed for a model that expects BGR."""
    crop = crop_batch(faces, model.spec)
    if model.channel_order == CHANNEL_ORDER_BGR:
        # Models trained on OpenCV-read images saw BGR; feeding them RGB swaps red and blue silently.
        return np.ascontiguousarray(crop[..., ::-1])
    return crop


def predict_attribute(model: LoadedModel, faces: np.ndarray, gender: np.ndarray | None) -> np.ndarray:
    """Outputs of one model for ``faces``: (n, 2) for gender, (n,) for a regressor given ``gender`` (n, 2)."""
    crop = model_input(model, faces)
    if model.spec.output is OutputKind.GENDER_SOFTMAX:
        return model.predict(crop).astype(np.float32)
    if not model.spec.takes_gender:
        return model.predict(crop)[:, 0]
    if gender is None:
        raise ValueError(f"Model {model.spec.name!r} needs gender probabilities; gender must run first.")
    return model.predict(crop, gender)[:, 0]


def run_chain(chain: Sequence[LoadedModel], faces: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of every model for ``faces`` (n, 120, 120, 3): gender (n, 2), each attribute (n,)."""
    outputs: dict[str, np.ndarray] = {}
    gender: np.ndarray | None = None
    for model in chain:
        outputs[model.spec.name] = predict_attribute(model, faces, gender)
        if model.spec.output is OutputKind.GENDER_SOFTMAX:
            gender = outputs[model.spec.name]
    return outputs
