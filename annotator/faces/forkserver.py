"""Imported by the fork server of the extraction processes, before it forks any of them.

The extraction modules are imported once here, so each worker process forked starts with them in memory, its pages
shared with its siblings until written. Where MTCNN's networks must be converted or run on TensorFlow, TensorFlow
(seconds of CPU and hundreds of MB per process) and MTCNN's code are imported here too, and never run: TensorFlow
hangs in a child forked after it ran. Where they are cached for XNNPACK, no process of the pool imports TensorFlow.
"""

from annotator.faces.lite_detector import cached_without_tensorflow
from annotator.tf_runtime import import_tensorflow_quietly

if not cached_without_tensorflow():
    import_tensorflow_quietly()
    import mtcnn  # noqa: F401  (its code only: the detector is built in each worker)

import annotator.faces.pool  # noqa: F401  (the worker's entry points and everything they import)
