"""Folder-per-class exports: ``OUT/[SPLIT/]female|male/<sha256>_<method>_<face>.png``.

The layout ``keras.utils.image_dataset_from_directory`` reads, with the gender class as the label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from annotator.errors import ExportError
from annotator.exports.aligned_faces import aligned_faces, encode_face
from annotator.exports.query import FaceRow
from annotator.exports.selection import FEMALE, MALE, gender_class

CLASSES = (FEMALE, MALE)


def face_file_name(row: FaceRow) -> str:
    """A name unique per face: the image's SHA-256, the face's method and index."""
    return f"{row.sha256}_{row.method}_{row.face_index}.png"


def write_folders(rows: Sequence[FaceRow], folder: Path, splits: Sequence[str] = ()) -> None:
    """Write each row's aligned face as a PNG under its split (one of ``splits``, if any) and gender class."""
    classes = [gender_class(row) for row in rows]
    missing = [row.path for row, name in zip(rows, classes) if name is None]
    if missing:
        raise ExportError(f"{len(missing)} faces have no gender values to file them under, e.g. {missing[0]}.")
    faces = aligned_faces(rows)
    # Every split gets both class folders, even empty ones, so class indices agree across splits.
    for split in splits or [""]:
        for name in CLASSES:
            (folder / split / name).mkdir(parents=True, exist_ok=True)
    for row, name, face in zip(rows, classes, faces):
        (folder / (row.split or "") / str(name) / face_file_name(row)).write_bytes(encode_face(face, "png"))
