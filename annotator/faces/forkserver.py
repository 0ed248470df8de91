"""Imported by the fork server of the extraction processes, before it forks any of them.

TensorFlow's import costs seconds of CPU and hundreds of MB per process. The fork server imports it, MTCNN's code
and the extraction modules once, and runs none of them (TensorFlow hangs in a child forked after it ran), so each
worker process it forks starts with them already in memory, its pages shared with its siblings until written.
"""

from annotator.tf_runtime import import_tensorflow_quietly

import_tensorflow_quietly()

import mtcnn  # noqa: F401  (its code only: the detector is built in each worker)

import annotator.faces.pool  # noqa: F401  (the worker's entry points and everything they import)
