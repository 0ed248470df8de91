"""Convert a TF SavedModel of a seed architecture into a Keras model of its spec, without running its graph.

Why convert instead of wrapping the SavedModel in a layer that calls its signature: a SavedModel is a
TensorFlow program, and calling it runs whatever ops its graph holds (file reads and writes included), in
every worker, on every load, outside Keras' ``safe_mode``. Here the serving signature is parsed from
``saved_model.pb`` and the variables are read from its checkpoint: both are plain data, nothing is executed.
The result is the seed architecture (``build_model``) holding those variables, stored as an ordinary
``.keras`` file that loads under ``safe_mode`` and can be fine-tuned like any other version. The price: only
SavedModels whose variables are the seed architecture of the spec can be imported; anything else is refused
with the shapes that differ.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2, trackable_object_graph_pb2

from annotator.errors import ModelImportError
from annotator.models.architectures import build_model
from annotator.models.specs import ModelSpec, OutputKind

SIGNATURE = "serving_default"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# Optimizer state (step counter, Adam moments) is saved with a trained model but is not part of it.
SKIPPED_CHILDREN = frozenset({"optimizer", "_optimizer"})


def expected_signature(spec: ModelSpec) -> str:
    """The serving signature a SavedModel of ``spec`` must have, in words."""
    height, width, _ = spec.input_shape
    gender = " + male_prob, female_prob" if spec.takes_gender else ""
    outputs = 2 if spec.output is OutputKind.GENDER_SOFTMAX else 1
    return (f"one float input of shape (None, {spec.flat_input_size}) [{height}x{width}x3 crop/255 flattened"
            f"{gender}] and one output of shape (None, {outputs})")


def _shapes(tensors: Mapping[str, Any]) -> list[tuple[int | None, ...] | None]:
    """Shapes of a signature's TensorInfo protos, sorted by name; free dimensions and unknown ranks are None."""
    return [None if t.tensor_shape.unknown_rank else tuple(d.size if d.size >= 0 else None
                                                            for d in t.tensor_shape.dim)
            for _, t in sorted(tensors.items())]


def check_signature(spec: ModelSpec, folder: Path) -> None:
    """Refuse a SavedModel whose serving signature does not take the seed's flat vector for ``spec``."""
    graph = saved_model_pb2.SavedModel()
    try:
        graph.ParseFromString((folder / "saved_model.pb").read_bytes())
    except (OSError, DecodeError) as error:
        raise ModelImportError(f"Cannot read the SavedModel in {folder}: {error}.") from None
    signatures = {name: sig for meta in graph.meta_graphs for name, sig in meta.signature_def.items()
                  if not name.startswith("__")}
    if SIGNATURE not in signatures and len(signatures) != 1:
        raise ModelImportError(f"The SavedModel in {folder} has no {SIGNATURE!r} signature. "
                               f"Received: signatures={sorted(signatures)}.")
    signature = signatures.get(SIGNATURE) or next(iter(signatures.values()))
    inputs, outputs = _shapes(signature.inputs), _shapes(signature.outputs)
    outputs_wanted = 2 if spec.output is OutputKind.GENDER_SOFTMAX else 1
    floats = all(t.dtype == types_pb2.DT_FLOAT for t in signature.inputs.values())
    if inputs != [(None, spec.flat_input_size)] or outputs != [(None, outputs_wanted)] or not floats:
        raise ModelImportError(
            f"The SavedModel in {folder} does not fit the {spec.name} model: expected {expected_signature(spec)}. "
            f"Received: shape=inputs {inputs}, outputs {outputs}{'' if floats else ', non-float input'}.")


def _natural_key(text: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def ordered_variables(folder: Path) -> list[tuple[str, np.ndarray]]:
    """The SavedModel's model variables in the order its objects were tracked (the layers' order)."""
    try:
        reader = tf.train.load_checkpoint(str(folder / "variables" / "variables"))
    except (tf.errors.OpError, ValueError) as error:
        raise ModelImportError(f"Cannot read the variables of the SavedModel in {folder}: "
                               f"{str(error).splitlines()[0]}") from None
    keys: list[str] = []
    if reader.has_tensor(OBJECT_GRAPH_KEY):
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
        seen: set[int] = set()
        stack = [0]
        while stack:  # depth first, children in tracking order: a model's layers come in the order it built them
            node_id = stack.pop()
            if node_id in seen:
                continue
            seen.add(node_id)
            node = graph.nodes[node_id]
            keys += [a.checkpoint_key for a in node.attributes if a.name == "VARIABLE_VALUE"]
            stack += [c.node_id for c in reversed(node.children) if c.local_name not in SKIPPED_CHILDREN]
    else:  # an old checkpoint without its object graph: numbered layer names still sort into build order
        keys = sorted((k for k in reader.get_variable_to_shape_map() if k.endswith("VARIABLE_VALUE")),
                      key=_natural_key)
    unique = list(dict.fromkeys(keys))
    return [(key, reader.get_tensor(key)) for key in unique]


def convert_saved_model(spec: ModelSpec, folder: Path) -> keras.Model:
    """``spec``'s seed architecture holding the variables of the SavedModel in ``folder``."""
    check_signature(spec, folder)
    variables = ordered_variables(folder)
    model = build_model(spec)
    expected = [tuple(w.shape) for w in model.weights]
    received = [tuple(array.shape) for _, array in variables]
    if received != expected:
        raise ModelImportError(
            f"The variables of the SavedModel in {folder} are not the seed architecture of {spec.name}: "
            f"expected {len(expected)} variables of shapes {expected}. Received: shape={received}.")
    model.set_weights([array for _, array in variables])
    return model
