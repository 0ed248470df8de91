"""Bring your own model: turn a ``.keras`` file, a legacy ``.h5`` file or a TF SavedModel into a store version.

Every format ends as a Keras model with the spec's inputs (``[image]`` or ``[image, gender_probs]``) and output,
saved by :func:`~annotator.models.store.register_model` as a ``.keras`` file; nothing imported can run Python code
when a worker loads it (Lambda layers are refused, SavedModels are converted, see ``savedmodel_import``).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
from keras import layers
from sqlalchemy.orm import Session

from annotator.errors import ModelImportError, UnsafeModelError
from annotator.models.architectures import GENDER_INPUT, IMAGE_INPUT, build_model
from annotator.models.savedmodel import convert_saved_model
from annotator.models.specs import ModelSpec, OutputKind, get_spec
from annotator.models.store import register_model
from db.models import ModelVersion

FORMAT_KERAS = "keras"
FORMAT_H5_MODEL = "h5-model"
FORMAT_H5_WEIGHTS = "h5-weights"
FORMAT_SAVED_MODEL = "saved_model"
PROBE_BATCH = 4
UNSAFE_LAYERS = frozenset({"Lambda"})  # its config carries Python bytecode
SUPPORTED = "a .keras file, a legacy .h5 weights or model file, or a TF SavedModel folder"


@dataclass(frozen=True)
class ImportedModel:
    """A model that fits its spec, and the format it came from."""

    model: keras.Model
    format: str


def _first_line(error: Exception, limit: int = 200) -> str:
    # Keras errors can run to pages; the CLI prints one line.
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[:limit].rstrip() + "..."


def _layer_classes(config: Any) -> Iterator[tuple[str, str]]:
    """(class name, layer name) of every object in a Keras config, nested models included."""
    if isinstance(config, dict):
        if "class_name" in config:
            inner = config.get("config")
            yield str(config["class_name"]), str(inner.get("name", "")) if isinstance(inner, dict) else ""
        for value in config.values():
            yield from _layer_classes(value)
    elif isinstance(config, list):
        for value in config:
            yield from _layer_classes(value)


def refuse_unsafe(config: Any, path: Path) -> None:
    """Raise :class:`UnsafeModelError` when ``config`` holds a layer that carries Python code."""
    for class_name, name in _layer_classes(config):
        if class_name in UNSAFE_LAYERS:
            raise UnsafeModelError(
                f"{path} contains a {class_name} layer ({name!r}), which runs arbitrary Python code when loaded; "
                "refusing it. Rebuild the model from built-in layers, or import its weights as an .h5 file.")


def _keras_archive_config(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as error:
        raise ModelImportError(f"{path} is not a Keras 3 .keras archive: {_first_line(error)}.") from None


def _h5_model_config(path: Path) -> Any | None:
    """The model config of a full-model .h5 file, or None for a weights-only file."""
    try:
        with h5py.File(path, "r") as handle:
            config = handle.attrs.get("model_config")
    except OSError as error:
        raise ModelImportError(f"{path} is not an HDF5 file: {_first_line(error)}.") from None
    if config is None:
        return None
    return json.loads(config.decode("utf-8") if isinstance(config, bytes) else config)


def _load_safely(path: Path) -> keras.Model:
    try:
        # safe_mode is the second line of defence after refuse_unsafe: it refuses any serialised lambda.
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for an unloadable file; all mean the same to the user.
        raise ModelImportError(f"Keras cannot load {path}: {_first_line(error)}.") from error


def legacy_weight_arrays(path: Path) -> list[np.ndarray]:
    """The arrays of a Keras 2 ``save_weights`` .h5 file (or a full-model file's weights), in layer order."""
    def text(name: str | bytes) -> str:
        return name.decode() if isinstance(name, bytes) else name

    try:
        with h5py.File(path, "r") as handle:
            group: Any = handle
            if "layer_names" not in group.attrs and "model_weights" in group:
                group = group["model_weights"]
            if "layer_names" not in group.attrs:
                raise ModelImportError(f"{path} holds neither a Keras model nor legacy Keras weights "
                                       "(no layer_names); Keras 3 .weights.h5 files are not supported.")
            layers_ = [group[text(name)] for name in group.attrs["layer_names"]]
            return [np.asarray(layer[text(w)]) for layer in layers_ for w in layer.attrs.get("weight_names", [])]
    except (OSError, KeyError) as error:
        raise ModelImportError(f"Cannot read the weights in {path}: {_first_line(error)}.") from None


def load_legacy_weights(spec: ModelSpec, path: Path) -> keras.Model:
    """``spec``'s seed architecture with the weights of a legacy .h5 file.

    Weights are matched by order, as Keras' own legacy loader does, so layer names may differ; the seed
    models split one flat input inside ``call()``, which has no weights, so the two-input model takes them as is.
    """
    model = build_model(spec)
    arrays = legacy_weight_arrays(path)
    expected = [tuple(w.shape) for w in model.weights]
    received = [tuple(a.shape) for a in arrays]
    if received != expected:
        raise ModelImportError(
            f"The weights in {path} are not the seed architecture of {spec.name}: expected {len(expected)} arrays "
            f"of shapes {expected}. Received: shape={received}.")
    model.set_weights(arrays)
    return model


def _flat_input_adapter(spec: ModelSpec, flat_model: keras.Model) -> keras.Model:
    """Give a model of the seed's flat vector the chain's inputs, with built-in (serialisable) layers only."""
    image = keras.Input(shape=spec.input_shape, name=IMAGE_INPUT)
    flat = layers.Flatten(name="flat_crop")(image)  # row-major H, W, C: the seed's numpy reshape
    if not spec.takes_gender:
        return keras.Model(image, flat_model(flat), name=spec.name)
    gender = keras.Input(shape=(2,), name=GENDER_INPUT)
    vector = layers.Concatenate(name="seed_flat_vector")([flat, gender])
    return keras.Model([image, gender], flat_model(vector), name=spec.name)


def fit_to_spec(spec: ModelSpec, model: keras.Model, source: Path) -> keras.Model:
    """Check ``model``'s inputs and output against ``spec``; adapt a flat-vector model to the chain's inputs."""
    try:
        received = [tuple(t.shape[1:]) for t in model.inputs]
        outputs = [tuple(t.shape[1:]) for t in model.outputs]
    except (AttributeError, ValueError):
        raise ModelImportError(f"The model in {source} has no defined input shape; save it with keras.Input.") \
            from None
    expected = [spec.input_shape, (2,)] if spec.takes_gender else [spec.input_shape]
    expected_output = [(2,)] if spec.output is OutputKind.GENDER_SOFTMAX else [(1,)]
    flat = [(spec.flat_input_size,)]
    if outputs != expected_output or received not in (expected, flat):
        raise ModelImportError(
            f"The model in {source} does not fit the {spec.name} model: expected inputs {expected} "
            f"(or one flat vector {flat[0]}) and output {expected_output[0]}. "
            f"Received: shape=inputs {received}, output {outputs}.")
    fitted = _flat_input_adapter(spec, model) if received == flat else model
    _check_output_range(spec, fitted, source)
    return fitted


def _check_output_range(spec: ModelSpec, model: keras.Model, source: Path) -> None:
    # Shapes cannot tell logits from probabilities; one small forward pass can.
    rng = np.random.default_rng(0)
    inputs = [rng.random((PROBE_BATCH, *spec.input_shape), dtype=np.float32)]
    if spec.takes_gender:
        inputs.append(np.tile(np.float32([[0.5, 0.5]]), (PROBE_BATCH, 1)))
    out = np.asarray(model(inputs if len(inputs) > 1 else inputs[0], training=False))
    if spec.output is OutputKind.GENDER_SOFTMAX and not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        raise ModelImportError(f"The model in {source} does not end in a 2-way softmax: its outputs do not sum "
                               f"to 1. Received: sums={np.round(out.sum(axis=1), 3).tolist()}.")
    if np.any(out < -1e-6) or np.any(out > 1 + 1e-6):
        raise ModelImportError(f"The model in {source} gives outputs outside 0..1 (expected a "
                               f"{spec.output.value}). Received: range=({out.min():.3f}, {out.max():.3f}).")


def _seed_weights_of_unloadable(spec: ModelSpec, path: Path, error: ModelImportError) -> keras.Model:
    # Keras 2 models of the seed's flat input split it with TFOpLambda slices, which Keras 3 cannot rebuild;
    # their weights are still the seed architecture's, and reading weights runs no code.
    try:
        return load_legacy_weights(spec, path)
    except ModelImportError as weights_error:
        raise ModelImportError(f"{error} Its weights do not fit either: {weights_error}") from None


def import_model(spec: ModelSpec, path: Path) -> ImportedModel:
    """Load ``path`` in whichever supported format it is and fit it to ``spec``."""
    if not path.exists():
        raise ModelImportError(f"Model file not found: {path}.")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelImportError(f"{path} is a folder without saved_model.pb; expected {SUPPORTED}.")
        return ImportedModel(convert_saved_model(spec, path), FORMAT_SAVED_MODEL)
    suffix = path.suffix.lower()
    if suffix == ".keras":
        refuse_unsafe(_keras_archive_config(path), path)
        return ImportedModel(fit_to_spec(spec, _load_safely(path), path), FORMAT_KERAS)
    if suffix in (".h5", ".hdf5"):
        config = _h5_model_config(path)
        if config is None:
            return ImportedModel(load_legacy_weights(spec, path), FORMAT_H5_WEIGHTS)
        refuse_unsafe(config, path)
        try:
            model = _load_safely(path)
        except ModelImportError as error:
            return ImportedModel(_seed_weights_of_unloadable(spec, path, error), FORMAT_H5_WEIGHTS)
        return ImportedModel(fit_to_spec(spec, model, path), FORMAT_H5_MODEL)
    raise ModelImportError(f"Unknown model format {suffix or 'without a suffix'} of {path}; expected {SUPPORTED}.")


def import_into_store(session: Session, home: Path, name: str, path: Path, *, channel_order: str,
                      activate: bool) -> ModelVersion:
    """Import ``path`` as the next version of model ``name``; record where it came from."""
    spec = get_spec(name)
    imported = import_model(spec, path)
    metrics = {"imported_from": str(path.resolve()), "format": imported.format}
    return register_model(session, home, spec, imported.model, metrics=metrics, activate=activate,
                          channel_order=channel_order)
