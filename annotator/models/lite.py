"""The chain's compiled graph converted to TensorFlow Lite and run by XNNPACK, LiteRT's engine for CPUs.

TensorFlow's own kernels run the seed models' small convolutions (3 to 64 channels) far below what a CPU's
vector units can do; XNNPACK runs the very same float32 graph with about a third less CPU time (``python
bench/throughput.py`` prints both). The conversion (about a second) happens once per process and chain, from the
function :class:`~annotator.models.graph.ChainGraph` compiled for uint8 faces, so crops, scaling and the BGR
reversal come along. Outputs equal TensorFlow's to within 1e-5 (float32 sums taken in another order).

It is used for float32 chains on hosts without a GPU, when ``ai-edge-litert`` is installed (it is a dependency
wherever it has wheels), unless ``ANNOTATE_CHAIN_ENGINE=tensorflow``. A GPU host keeps TensorFlow (one
host-to-device copy a batch), and so do bfloat16 and float16, which run on oneDNN's or the GPU's own formats. A
chain TensorFlow Lite cannot convert runs on TensorFlow, with a warning saying why.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from annotator.models.specs import FACE_SIZE
from annotator.settings import usable_cpus
from annotator.tf_runtime import import_tensorflow, silenced_stderr

log = logging.getLogger(__name__)
_SIGNATURE = "serving_default"
BATCH = 64
"""Faces per interpreter call: XNNPACK's fastest size here (256 at a time took half as long again a face)."""


def tflite_model(function: Any, models: list[Any]) -> bytes:
    """The concrete TensorFlow ``function``, which reads the weights of the Keras ``models``, converted to a
    TensorFlow Lite model."""
    tf = import_tensorflow()
    weights = tf.Module()
    # Tracked, the converter freezes their values into the model; untracked, it leaves them unset.
    weights.read = [weight.value for model in models for weight in model.weights]
    return tf.lite.TFLiteConverter.from_concrete_functions([function], weights).convert()


class LiteChain:
    """``function`` (a concrete TensorFlow function of uint8 faces returning a dict of float32 outputs, reading the
    weights of ``models``) run by LiteRT's interpreter on ``threads`` cores, :data:`BATCH` faces a call; one call
    at a time (an interpreter is not thread-safe)."""

    def __init__(self, function: Any, models: list[Any], threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=tflite_model(function, models), num_threads=threads)
        runner = self._interpreter.get_signature_runner(_SIGNATURE)
        (self._input,) = (details["index"] for details in runner.get_input_details().values())
        self._outputs = {name: details["index"] for name, details in runner.get_output_details().items()}
        del runner  # it holds views of the interpreter's tensors, which would forbid resizing them
        self._size = 0
        self._lock = threading.Lock()
        with silenced_stderr():  # LiteRT prints an INFO line from C++ when it first sets up XNNPACK
            self._resize(BATCH)

    def _resize(self, size: int) -> None:
        if size != self._size:
            self._interpreter.resize_tensor_input(self._input, (size, FACE_SIZE, FACE_SIZE, 3), strict=False)
            self._interpreter.allocate_tensors()
            self._size = size

    def __call__(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        """Every output for the uint8 ``faces`` (n, 120, 120, 3)."""
        parts = []
        with self._lock:
            for start in range(0, len(faces), BATCH):
                batch = np.ascontiguousarray(faces[start : start + BATCH])
                self._resize(len(batch))
                self._interpreter.set_tensor(self._input, batch)
                self._interpreter.invoke()
                parts.append({name: self._interpreter.get_tensor(index) for name, index in self._outputs.items()})
        return {name: np.concatenate([part[name] for part in parts]) for name in self._outputs}


def xnnpack_applies() -> bool:
    """Whether LiteRT is installed and this process sees no GPU (where TensorFlow is the faster engine)."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return not import_tensorflow().config.list_physical_devices("GPU")


def convert_for_xnnpack(function: Any, models: list[Any]) -> LiteChain | None:
    """``function`` converted for XNNPACK, or None (and a warning) when TensorFlow Lite cannot convert it."""
    try:
        return LiteChain(function, models, threads=usable_cpus())
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError, ValueError, RuntimeError
        log.warning("The chain runs on TensorFlow: TensorFlow Lite could not convert it (%s: %s).",
                    type(error).__name__, str(error).splitlines()[0] if str(error) else "no detail")
        return None
