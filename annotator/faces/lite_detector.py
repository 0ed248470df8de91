"""MTCNN's three networks run by XNNPACK, LiteRT's engine for CPUs, instead of TensorFlow's kernels.

MTCNN calls its networks about nine times a photo on small inputs: PNet once per level of the image pyramid,
then RNet and ONet on the proposals. XNNPACK runs the very same float32 networks with about a third less CPU
time and finds the same faces (boxes, landmarks and scores within a thousandth on UTKFace);
``python bench/throughput.py`` prints both. It applies where the chain's XNNPACK does (:mod:`annotator.models.lite`):
on hosts without a GPU, with ``ai-edge-litert`` installed. A network TensorFlow Lite cannot convert stays on
TensorFlow, with a warning saying why.

The conversion takes about a second for the three networks, so its result is kept under
``ANNOTATE_HOME/cache``, named by the versions of ``mtcnn`` (whose wheel holds the weights) and of TensorFlow (which
converts): the extraction processes of later commands load it in milliseconds instead. A cache that cannot be
written or read is converted again, never an error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from annotator.models.lite import cached_model, tflite_model, xnnpack_applies
from annotator.settings import home_from_env
from annotator.tf_runtime import import_tensorflow, silenced_stderr

log = logging.getLogger(__name__)
STAGE_NAMES = ("pnet", "rnet", "onet")
_SMALLEST_INPUTS = ((1, 12, 12, 3), (1, 24, 24, 3), (1, 48, 48, 3))  # what each network reads at the least


class LiteStage:
    """One network as a TensorFlow Lite model, called like the compiled function it replaces: float32 images in,
    its outputs as tensors out, in the function's order. Each calling thread runs an interpreter of its own
    on one core (the extraction pool's workers are the parallelism)."""

    def __init__(self, model: bytes, smallest_input: tuple[int, ...]) -> None:
        self._model, self._smallest_input = model, smallest_input
        self._local = threading.local()
        self._interpreter()  # fails here, not on the first photo, if LiteRT cannot load the model

    def _interpreter(self) -> Any:
        found = getattr(self._local, "interpreter", None)
        if found is None:
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_content=self._model, num_threads=1)
            runner = interpreter.get_signature_runner()
            (self._local.input,) = (details["index"] for details in runner.get_input_details().values())
            outputs = runner.get_output_details()  # named output_0, output_1, ... in the function's order
            ordered = [outputs[f"output_{i}"] for i in range(len(outputs))]
            self._local.outputs = [details["index"] for details in ordered]
            self._local.empty = [np.zeros([0, *(max(int(n), 0) for n in details["shape_signature"][1:])], np.float32)
                                 for details in ordered]
            del runner  # it holds views of the interpreter's tensors, which would forbid resizing them
            interpreter.resize_tensor_input(self._local.input, self._smallest_input, strict=False)
            with silenced_stderr():  # LiteRT prints an INFO line from C++ when it first sets up XNNPACK
                interpreter.allocate_tensors()
            self._local.shape = self._smallest_input
            self._local.interpreter = found = interpreter
        return found

    def __call__(self, images: Any) -> list[Any]:
        interpreter, local = self._interpreter(), self._local
        images = np.asarray(images, np.float32)
        tf = import_tensorflow()
        if not len(images):  # no proposal left for RNet or ONet: XNNPACK cannot run an empty batch
            return [tf.constant(empty) for empty in local.empty]
        if images.shape != local.shape:
            interpreter.resize_tensor_input(local.input, images.shape, strict=False)
            interpreter.allocate_tensors()
            local.shape = images.shape
        interpreter.set_tensor(local.input, images)
        interpreter.invoke()
        return [tf.constant(interpreter.get_tensor(index)) for index in local.outputs]  # mtcnn calls .numpy()


def cache_folder() -> Path:
    """Where the converted networks of this ``mtcnn`` and TensorFlow are kept."""
    tf = import_tensorflow()
    return home_from_env() / "cache" / f"mtcnn-{version('mtcnn')}-tensorflow-{tf.__version__}"


def xnnpack_stages(models: Sequence[Any], compile_model: Callable[[Any, int], Any]) -> list[LiteStage] | None:
    """MTCNN's networks (the Keras ``models`` of PNet, RNet and ONet) for XNNPACK, from the cache or converted from
    ``compile_model(model, index)`` (their concrete functions); None where XNNPACK does not apply or TensorFlow Lite
    cannot convert one (with a warning)."""
    if not xnnpack_applies():
        return None
    folder = cache_folder()
    try:
        return [cached_model(folder / f"{name}.tflite", lambda model, smallest=smallest: LiteStage(model, smallest),
                             lambda model=model, index=index: tflite_model(compile_model(model, index), [model]),
                             f"MTCNN's {name}")
                for index, (name, model, smallest) in enumerate(zip(STAGE_NAMES, models, _SMALLEST_INPUTS, strict=True))]
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError, ValueError, RuntimeError
        log.warning("MTCNN runs on TensorFlow: TensorFlow Lite could not convert it (%s: %s).",
                    type(error).__name__, str(error).splitlines()[0] if str(error) else "no detail")
        return None
