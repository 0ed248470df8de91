"""The TFRecord layout of exported faces: one ``tf.train.Example`` per face, written and parsed here.

Features: ``image`` (PNG or JPEG bytes of the aligned 120x120 face), ``image_format``, ``sha256``, ``path``,
``face_index``, and one float per label (``male_prob``, ``female_prob`` and each exported regressor; NaN
where a face has no value). TensorFlow is imported inside the functions, never at import time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotator.images.decoding import FACE_SIZE
from annotator.models.specs import attribute_names
from annotator.tf_runtime import import_tensorflow

if TYPE_CHECKING:
    import tensorflow as tf

    from annotator.exports.query import FaceRow

IMAGE, IMAGE_FORMAT, SHA256, PATH, FACE_INDEX = "image", "image_format", "sha256", "path", "face_index"
GENDER_LABELS = ("male_prob", "female_prob")


def label_names(attributes: Sequence[str]) -> list[str]:
    """The float features of an export of these regressor attributes."""
    return [*GENDER_LABELS, *attributes]


def encode_example(row: FaceRow, image: bytes, image_format: str, attributes: Sequence[str]) -> bytes:
    """One face as a serialised ``tf.train.Example``."""
    tf = import_tensorflow()

    def text(value: str) -> Any:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

    features = {
        IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        IMAGE_FORMAT: text(image_format), SHA256: text(row.sha256), PATH: text(row.path),
        FACE_INDEX: tf.train.Feature(int64_list=tf.train.Int64List(value=[row.face_index])),
    }
    for name in label_names(attributes):
        value = row.values.get(name, math.nan)
        features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_tfrecord(rows: Sequence[FaceRow], path: Path, attributes: Sequence[str], image_format: str = "png") -> None:
    """Write one example per row, the face re-decoded from its source image."""
    # Imported here so that reading a dataset needs neither the database layer nor the pipeline.
    from annotator.exports.aligned_faces import aligned_faces, encode_face

    tf = import_tensorflow()
    faces = aligned_faces(rows)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row, face in zip(rows, faces):
            writer.write(encode_example(row, encode_face(face, image_format), image_format, attributes))


def parse_example(serialized: tf.Tensor, names: Sequence[str]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """``(image float32 120x120x3 in 0..1, {label: float32})`` of one serialised example."""
    # A plain import: this runs inside Dataset.map, where TensorFlow is loaded already and autograph would
    # warn about converting import_tensorflow's os.environ call.
    import tensorflow as tf
    spec = {IMAGE: tf.io.FixedLenFeature([], tf.string),
            **{name: tf.io.FixedLenFeature([], tf.float32) for name in names}}
    parsed = tf.io.parse_single_example(serialized, spec)
    image = tf.io.decode_image(parsed[IMAGE], channels=3, expand_animations=False)
    image.set_shape((FACE_SIZE, FACE_SIZE, 3))
    return tf.cast(image, tf.float32) / 255.0, {name: parsed[name] for name in names}


def parse_metadata(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """``sha256``, ``path`` and ``face_index`` of one serialised example, to join it back to other exports."""
    import tensorflow as tf  # runs inside Dataset.map, like parse_example
    spec = {SHA256: tf.io.FixedLenFeature([], tf.string), PATH: tf.io.FixedLenFeature([], tf.string),
            FACE_INDEX: tf.io.FixedLenFeature([], tf.int64)}
    return tf.io.parse_single_example(serialized, spec)


def stored_label_names(path: str | Path) -> list[str]:
    """The label features of a file, read from its first example (gender first, then chain order)."""
    tf = import_tensorflow()
    for raw in tf.data.TFRecordDataset(str(path)).take(1):
        feature = tf.train.Example.FromString(raw.numpy()).features.feature
        floats = {name for name, value in feature.items() if value.HasField("float_list")}
        known = [name for name in (*GENDER_LABELS, *attribute_names(include_optional=True)) if name in floats]
        return known + sorted(floats.difference(known))
    raise ValueError(f"{path} holds no examples.")


def load_dataset(path: str | Path, names: Sequence[str] | None = None) -> tf.data.Dataset:
    """``(image, labels)`` pairs of an exported file; the label names are read from the file by default."""
    tf = import_tensorflow()
    chosen = list(names) if names is not None else stored_label_names(path)
    return tf.data.TFRecordDataset(str(path)).map(lambda raw: parse_example(raw, chosen),
                                                  num_parallel_calls=tf.data.AUTOTUNE)
