"""Import TensorFlow once, quietly, set it up for shared GPUs, and let a process that imported it exit at once."""

from __future__ import annotations

import atexit
import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

_configured = False
_freezes_at_exit = False
_lock = threading.RLock()  # one import or silenced block at a time: fd 2 is restored after each


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """fd 2 sent to /dev/null for the duration, one such block at a time: for banners C++ code prints to it
    whatever logging says (TensorFlow's oneDNN banner, LiteRT's XNNPACK line), so real errors later still show."""
    with _lock:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def import_tensorflow_quietly() -> ModuleType:
    """TensorFlow imported with its start-up banner hidden, and nothing else: no device is touched and no
    operation runs, so a process that only did this may still fork children that use TensorFlow."""
    global _freezes_at_exit
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with silenced_stderr():  # the oneDNN banner is written before logging is configured
        import tensorflow as tf
    with _lock:
        if not _freezes_at_exit:
            # The interpreter's last collections walk every object TensorFlow and Keras made, about 0.7 s of each
            # command's exit, and free nothing that matters then. Frozen, they are skipped. Registered now, it runs
            # after every exit handler registered later (the last in, the first out).
            atexit.register(gc.freeze)
            _freezes_at_exit = True
    return tf


def import_tensorflow() -> ModuleType:
    """TensorFlow, with its start-up banner hidden and GPU memory allocated as needed."""
    global _configured
    with _lock:
        if _configured:
            import tensorflow as tf

            return tf
        tf = import_tensorflow_quietly()
        for gpu in tf.config.list_physical_devices("GPU"):
            # Without this TF reserves the whole GPU at start-up; growth lets a worker share it.
            tf.config.experimental.set_memory_growth(gpu, True)
        _configured = True
        return tf
