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

Converted models (the chain's, MTCNN's) are kept under ``ANNOTATE_HOME/cache`` (:func:`cached_model`), so only a
home's first command converts them. A later one loads the chain without importing TensorFlow where
:func:`xnnpack_applies_early` can tell that XNNPACK applies without asking TensorFlow.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from annotator.models.specs import FACE_SIZE
from annotator.settings import usable_cpus
from annotator.tf_runtime import import_tensorflow, silenced_stderr

log = logging.getLogger(__name__)
_SIGNATURE = "serving_default"
_GPU_SIGNS = (Path("/proc/driver/nvidia/gpus"), Path("/dev/kfd"))  # NVIDIA's driver; AMD's ROCm
KEPT_CHAINS = 8
"""Converted chains a home keeps (about 19 MB each for the seed architectures): the ones used last."""
BATCH = 64
"""Faces per interpreter call: XNNPACK's fastest size here (256 at a time took half as long again a face)."""
Loaded = TypeVar("Loaded")


def tflite_model(function: Any, models: list[Any]) -> bytes:
    """The concrete TensorFlow ``function``, which reads the weights of the Keras ``models``, converted to a
    TensorFlow Lite model."""
    tf = import_tensorflow()
    weights = tf.Module()
    # Tracked, the converter freezes their values into the model; untracked, it leaves them unset.
    weights.read = [weight.value for model in models for weight in model.weights]
    return tf.lite.TFLiteConverter.from_concrete_functions([function], weights).convert()


class LiteChain:
    """A TensorFlow Lite ``model`` of the chain (uint8 faces in, a dict of float32 outputs out) run by LiteRT's
    interpreter on ``threads`` cores, :data:`BATCH` faces a call; one call at a time (an interpreter is not
    thread-safe)."""

    def __init__(self, model: bytes, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=model, num_threads=threads)
        runner = self._interpreter.get_signature_runner(_SIGNATURE)
        (self._input,) = (details["index"] for details in runner.get_input_details().values())
        outputs = runner.get_output_details()
        self._outputs = {name: details["index"] for name, details in outputs.items()}
        self._empty = {name: np.zeros([0, *(max(int(n), 0) for n in details["shape_signature"][1:])], np.float32)
                       for name, details in outputs.items()}
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
        if not len(faces):  # XNNPACK cannot run an empty batch
            return {name: empty.copy() for name, empty in self._empty.items()}
        parts = []
        with self._lock:
            for start in range(0, len(faces), BATCH):
                batch = np.ascontiguousarray(faces[start : start + BATCH])
                self._resize(len(batch))
                self._interpreter.set_tensor(self._input, batch)
                self._interpreter.invoke()
                parts.append({name: self._interpreter.get_tensor(index) for name, index in self._outputs.items()})
        return {name: np.concatenate([part[name] for part in parts]) for name in self._outputs}


def _litert_installed() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def xnnpack_applies() -> bool:
    """Whether LiteRT is installed and this process sees no GPU (where TensorFlow is the faster engine)."""
    return _litert_installed() and not import_tensorflow().config.list_physical_devices("GPU")


def xnnpack_applies_early() -> bool:
    """Whether XNNPACK applies, told without importing TensorFlow: LiteRT is installed and the host has no GPU
    TensorFlow could use (no NVIDIA or ROCm driver, no Metal plugin). False means "ask TensorFlow"
    (:func:`xnnpack_applies`), not "it does not apply"."""
    return (_litert_installed() and find_spec("tensorflow_metal") is None
            and not any(sign.exists() for sign in _GPU_SIGNS))


def cached_model(path: Path, load: Callable[[bytes], Loaded], convert: Callable[[], bytes], what: str) -> Loaded:
    """``load`` of the TensorFlow Lite model kept at ``path``, or of ``convert()``, which is then kept there for
    the next process. A file that does not load is converted again and a cache that cannot be written is not
    kept: a warning naming ``what`` each time, never an error."""
    try:
        return load(path.read_bytes())
    except FileNotFoundError:
        pass
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file: convert again
        log.warning("Converting %s again: its cached model %s did not load (%s).", what, path, error)
    model = convert()
    loaded = load(model)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        partial.write_bytes(model)
        os.replace(partial, path)  # whole or not at all, whichever process writes it last
    except OSError as error:
        log.warning("%s is not cached (%s): each process converts it again.", what[:1].upper() + what[1:], error)
    return loaded


def _forget_all_but_recent(path: Path) -> None:
    """Mark the chain at ``path`` used now and delete all but the :data:`KEPT_CHAINS` chains used last beside it."""
    try:
        os.utime(path)
        kept = sorted(path.parent.glob("chain-*.tflite"), key=lambda kept: kept.stat().st_mtime, reverse=True)
        for old in kept[KEPT_CHAINS:]:
            old.unlink()
    except OSError:  # not kept, or removed by another process meanwhile: nothing to tidy
        pass


def lite_chain(path: Path | None, convert: Callable[[], bytes]) -> LiteChain | None:
    """The chain ``convert()`` gives, run on every usable core, kept converted at ``path`` (when given) for later
    processes, beside the chains used last; None (and a warning) when TensorFlow Lite cannot convert it."""
    def load(model: bytes) -> LiteChain:
        return LiteChain(model, threads=usable_cpus())

    try:
        if path is None:
            return load(convert())
        converted = cached_model(path, load, convert, "the chain")
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError, ValueError, RuntimeError
        log.warning("The chain runs on TensorFlow: TensorFlow Lite could not convert it (%s: %s).",
                    type(error).__name__, str(error).splitlines()[0] if str(error) else "no detail")
        return None
    _forget_all_but_recent(path)
    return converted
