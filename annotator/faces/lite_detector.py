"""MTCNN's three networks run by XNNPACK, LiteRT's engine for CPUs, instead of TensorFlow's kernels.

MTCNN calls its networks about nine times a photo on small inputs: PNet once per level of the image pyramid,
then RNet and ONet on the proposals. XNNPACK runs the very same float32 networks with about a third less CPU
time and finds the same faces (boxes, landmarks and scores within a thousandth on UTKFace);
``python bench/throughput.py`` prints both. It applies where the chain's XNNPACK does (:mod:`annotator.models.lite`):
on hosts without a GPU, with ``ai-edge-litert`` installed. A network TensorFlow Lite cannot convert stays on
TensorFlow, with a warning saying why.

The conversion takes about a second for the three networks, so its result is kept under
``ANNOTATE_HOME/cache``, named by the version of ``mtcnn`` (whose wheel holds the weights): the extraction
processes of later commands load it in milliseconds, without importing TensorFlow, as the cascade around the
networks is NumPy (:mod:`annotator.faces.cascade`). A cache that cannot be written or read is converted again,
never an error.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from annotator.models.lite import cached_model, tflite_model, xnnpack_applies, xnnpack_applies_early
from annotator.settings import home_from_env
from annotator.tf_runtime import silenced_stderr

log = logging.getLogger(__name__)
STAGE_NAMES = ("pnet", "rnet", "onet")
_SMALLEST_INPUTS = ((1, 12, 12, 3), (1, 24, 24, 3), (1, 48, 48, 3))  # what each network reads at the least
KEPT_SHAPES = 16
"""Interpreters a thread keeps for each network, one per input shape it met last: PNet's pyramid levels of a
photo size or two (six each for portraits), RNet's and ONet's batch sizes (powers of two)."""


class LiteStage:
    """One network as a TensorFlow Lite model: a float32 batch in, its outputs as arrays out, in the order of the
    Keras model it was converted from. Each calling thread runs interpreters of its own on one core (the extraction
    pool's workers are the parallelism): one for each input shape it met last (:data:`KEPT_SHAPES`), as resizing
    one interpreter for every call cost about a fifth of the networks' time. Batches are padded to a power of two,
    so patches of RNet and ONet come in a few shapes."""

    def __init__(self, model: bytes, smallest_input: tuple[int, ...]) -> None:
        self._model = model
        self._local = threading.local()
        interpreter = self._made(smallest_input)  # fails here, not on the first photo, if LiteRT cannot load it
        self._input = interpreter.get_input_details()[0]["index"]  # the same in every interpreter of the model
        self._outputs = _outputs_in_order(interpreter)
        self._empty = [np.zeros([0, *(max(int(n), 0) for n in details["shape_signature"][1:])], np.float32)
                       for details in self._outputs]

    def _made(self, shape: tuple[int, ...]) -> Any:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=self._model, num_threads=1)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], shape, strict=False)
        with silenced_stderr():  # LiteRT prints an INFO line from C++ when it first sets up XNNPACK
            interpreter.allocate_tensors()
        return interpreter

    def _interpreter(self, shape: tuple[int, ...]) -> Any:
        kept: OrderedDict[tuple[int, ...], Any] = self._local.__dict__.setdefault("kept", OrderedDict())
        if shape in kept:
            kept.move_to_end(shape)
        else:
            kept[shape] = self._made(shape)
            if len(kept) > KEPT_SHAPES:
                kept.popitem(last=False)
        return kept[shape]

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        count = len(images)
        if not count:  # XNNPACK cannot run an empty batch
            return list(self._empty)
        padded = 1 << (count - 1).bit_length()
        if padded == count:  # PNet's single level, and full batches: no copy
            batch = np.ascontiguousarray(images, np.float32)
        else:
            batch = np.zeros((padded, *images.shape[1:]), np.float32)
            batch[:count] = images
        interpreter = self._interpreter(batch.shape)
        interpreter.set_tensor(self._input, batch)
        interpreter.invoke()
        return [interpreter.get_tensor(details["index"])[:count] for details in self._outputs]


def _outputs_in_order(interpreter: Any) -> list[dict[str, Any]]:
    """The details of an interpreter's outputs in the order of the function it was converted from."""
    runner = interpreter.get_signature_runner()
    outputs = runner.get_output_details()  # named output_0, output_1, ... in the function's order
    return [outputs[f"output_{i}"] for i in range(len(outputs))]


def cache_folder() -> Path:
    """Where the converted networks of this ``mtcnn`` (whose wheel holds the weights) are kept."""
    return home_from_env() / "cache" / f"mtcnn-{version('mtcnn')}"


def xnnpack_stages(keras_models: Callable[[], Sequence[Any]],
                   compile_model: Callable[[Any, int], Any]) -> list[LiteStage] | None:
    """MTCNN's networks for XNNPACK, from the cache or, for those not cached, converted from ``compile_model(model,
    index)`` (a concrete function) of ``keras_models()`` (PNet, RNet, ONet; built only then, with TensorFlow);
    None where XNNPACK does not apply or TensorFlow Lite cannot convert one (with a warning)."""
    if not (xnnpack_applies_early() or xnnpack_applies()):
        return None
    folder = cache_folder()

    def converted(index: int) -> bytes:
        model = keras_models()[index]
        return tflite_model(compile_model(model, index), [model])

    try:
        return [cached_model(folder / f"{name}.tflite", lambda model, smallest=smallest: LiteStage(model, smallest),
                             lambda index=index: converted(index), f"MTCNN's {name}")
                for index, (name, smallest) in enumerate(zip(STAGE_NAMES, _SMALLEST_INPUTS, strict=True))]
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError, ValueError, RuntimeError
        log.warning("MTCNN runs on TensorFlow: TensorFlow Lite could not convert it (%s: %s).",
                    type(error).__name__, str(error).splitlines()[0] if str(error) else "no detail")
        return None


def cached_without_tensorflow() -> bool:
    """Whether this process can load the networks without importing TensorFlow: XNNPACK applies by what the host
    shows (:func:`~annotator.models.lite.xnnpack_applies_early`) and all three are converted in the cache."""
    return xnnpack_applies_early() and all((cache_folder() / f"{name}.tflite").is_file() for name in STAGE_NAMES)
