"""Read a labelled data set for `annotate train`: plain ``path,label`` CSVs, manifests and our own csv export.

Accepted layouts (paths are relative to the CSV):

- ``path,label`` with or without that header, and a folder holding such a ``manifest.csv`` (extra columns
  such as ``age,race`` are ignored unless named by ``group_column``);
- the csv export (``path, sha256, face_index, male_prob, female_prob, eyes, ...``): the label is the column
  named like the model (or ``label_column``); for gender it is ``female_prob`` >= 0.5, and for a regressor the
  row's ``female_prob`` also gives its gender input and baseline group.

Labels: ``male``/``female`` (or a female probability) for gender, numbers in 0..1 for regressors, 0/1 for
identity, or any class name mapped to a number with ``class_map``. Images that cannot be decoded are skipped
and counted; everything else wrong with the file is a :class:`~annotator.errors.TrainingDataError`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from annotator.errors import TrainingDataError
from annotator.images.decoding import DecodeError, decode_face, decode_photo
from annotator.models.crops import crop_batch
from annotator.models.specs import GENDER, ModelSpec, OutputKind

MANIFEST = "manifest.csv"
GENDER_NAMES = {"male": 0.0, "female": 1.0}
EXPORT_GENDER_COLUMN = "female_prob"
MIN_USABLE_ROWS = 10  # fewer leaves a validation split of one or two images: no report worth reading
DECODE_CHUNK = 256  # faces decoded before being cropped, so memory holds crops, not 120x120 faces


@dataclass(frozen=True)
class LabelledRows:
    """A data set's rows before decoding: image paths, labels and what else the file says about each row."""

    source: Path
    layout: str  # "path,label", "manifest" or "export"
    label_column: str
    paths: list[Path]
    labels: np.ndarray  # gender: 0 male / 1 female; identity: 0/1; regressors: 0..1
    gender: np.ndarray | None  # 0/1 per row when the file says (an export's female_prob), else None
    groups: np.ndarray | None  # the group column's values (e.g. person ids), when asked for
    unlabelled: int  # rows with an empty label cell (an export's attribute with no value)


@dataclass(frozen=True)
class TrainingSet:
    """Model inputs (n, H, W, 3) in 0..1 at the spec's input size, with labels, genders and groups."""

    rows: LabelledRows
    images: np.ndarray
    labels: np.ndarray
    gender: np.ndarray | None
    groups: np.ndarray | None
    skipped: list[tuple[str, str]]  # (path as written in the CSV, reason) of images that did not decode
    paths: tuple[Path, ...] = ()  # the image of each row that decoded, in row order


def parse_class_map(text: str | None) -> dict[str, float]:
    """``"open=1,closed=0"`` as ``{"open": 1.0, "closed": 0.0}``; values must lie in 0..1."""
    if not text:
        return {}
    mapping: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            number = float(value) if sep and name.strip() else float("nan")
        except ValueError:
            number = float("nan")
        if not 0.0 <= number <= 1.0:
            raise TrainingDataError(f"--class-map takes NAME=VALUE pairs with values in 0..1, e.g. "
                                    f"open=1,closed=0. Received: {item!r}.")
        mapping[name.strip().lower()] = number
    return mapping


def resolve_csv(data: Path) -> Path:
    """The CSV behind ``data``: the file itself, or a folder's ``manifest.csv``."""
    if data.is_dir():
        manifest = data / MANIFEST
        if not manifest.is_file():
            raise TrainingDataError(f"The folder {data} has no {MANIFEST}; pass a CSV of path,label rows instead.")
        return manifest
    if not data.is_file():
        raise TrainingDataError(f"Data set not found: {data}.")
    return data


def _read_table(csv_path: Path) -> list[tuple[int, list[str]]]:
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            return [(number, [cell.strip() for cell in row])
                    for number, row in enumerate(csv.reader(handle), 1) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise TrainingDataError(f"Cannot read the data set {csv_path}: {error}.") from None


def _label_column(spec: ModelSpec, header: list[str], asked: str | None, csv_path: Path) -> str:
    if asked is not None:
        if asked not in header:
            raise TrainingDataError(f"{csv_path} has no column {asked!r}. Columns: {', '.join(header)}.")
        return asked
    for candidate in ("label", spec.name, EXPORT_GENDER_COLUMN if spec.output is OutputKind.GENDER_SOFTMAX else ""):
        if candidate in header:
            return candidate
    raise TrainingDataError(f"{csv_path} has no 'label' or {spec.name!r} column; name the label column with "
                            f"--label-column. Columns: {', '.join(header)}.")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def parse_label(spec: ModelSpec, text: str, column: str, class_map: dict[str, float], where: str) -> float:
    """One label as a number: 0/1 for gender (female) and identity, 0..1 for a regressor."""
    key = text.lower()
    value = class_map[key] if key in class_map else _number(text)
    if spec.output is OutputKind.GENDER_SOFTMAX:
        if key in GENDER_NAMES and key not in class_map:
            return GENDER_NAMES[key]
        if 0.0 <= value <= 1.0:
            # A probability column: female_prob (the export's) or male_prob, whichever names the label.
            female = 1.0 - value if column == "male_prob" else value
            return 1.0 if female >= 0.5 else 0.0
        raise TrainingDataError(f"{where}: gender labels are male or female (or a female probability in 0..1; "
                                f"map other names with --class-map). Received: {column}={text!r}.")
    if spec.binary and value not in (0.0, 1.0):
        raise TrainingDataError(f"{where}: {spec.name} labels are 1 (the person) or 0 (anyone else); map other "
                                f"names with --class-map. Received: {column}={text!r}.")
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise TrainingDataError(f"{where}: {spec.name} labels are numbers in 0..1 (map class names with "
                                f"--class-map, e.g. open=1,closed=0). Received: {column}={text!r}.")
    return value


def read_rows(csv_path: Path, spec: ModelSpec, *, label_column: str | None = None,
              class_map: dict[str, float] | None = None, group_column: str | None = None) -> LabelledRows:
    """Parse a data set's CSV into paths and labels, refusing malformed rows with their line number."""
    class_map = class_map or {}
    table = _read_table(csv_path)
    if not table:
        raise TrainingDataError(f"{csv_path} is empty.")
    first = [cell.lower() for cell in table[0][1]]
    if "path" in first:
        header, body = first, table[1:]
    elif label_column or group_column:
        raise TrainingDataError(f"{csv_path} has no header row, so it has no column to pick; add a header such as "
                                "path,label.")
    else:
        header, body = ["path", "label"], table
    layout = ("export" if {"sha256", EXPORT_GENDER_COLUMN} <= set(header)
              else "manifest" if csv_path.name == MANIFEST else "path,label")
    column = _label_column(spec, header, label_column and label_column.lower(), csv_path)
    if group_column is not None and group_column.lower() not in header:
        raise TrainingDataError(f"{csv_path} has no column {group_column!r}. Columns: {', '.join(header)}.")
    at = {name: index for index, name in enumerate(header)}
    # An export's female_prob gives a regressor its gender input; a model's own label column does not count.
    gender_column = (EXPORT_GENDER_COLUMN if spec.takes_gender and EXPORT_GENDER_COLUMN in at
                     and column != EXPORT_GENDER_COLUMN else None)
    paths, labels, genders, groups, unlabelled = [], [], [], [], 0
    for number, row in body:
        where = f"{csv_path}, line {number}"
        if len(row) != len(header):
            raise TrainingDataError(f"{where}: expected {len(header)} columns ({','.join(header)}). "
                                    f"Received: {len(row)} columns.")
        if not row[at["path"]]:
            raise TrainingDataError(f"{where}: the path is empty.")
        text = row[at[column]]
        if not text:
            unlabelled += 1  # the export leaves an attribute empty when no model or label gave it a value
            continue
        labels.append(parse_label(spec, text, column, class_map, where))
        paths.append(csv_path.parent / row[at["path"]])
        if gender_column is not None:
            genders.append(parse_label(GENDER, row[at[gender_column]], gender_column, {}, where))
        if group_column is not None:
            groups.append(row[at[group_column.lower()]])
    return LabelledRows(csv_path, layout, column, paths, np.asarray(labels, np.float32),
                        np.asarray(genders, int) if gender_column else None,
                        np.asarray(groups) if group_column else None, unlabelled)


def _decode(path: Path, spec: ModelSpec, crop_level: bool) -> np.ndarray:
    if not crop_level:
        return decode_face(path)
    # A ready-made crop goes straight to the model's input size (it may not be square, e.g. eyes 32x60).
    height, width = spec.input_size
    picture = decode_photo(path, draft_side=max(height, width))
    resized = picture.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.float32) / 255.0


def decode_inputs(rows: LabelledRows, spec: ModelSpec, *, crop_level: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """The model inputs of every row that decodes, the indices of those rows, and (path, reason) of the rest."""
    inputs, kept, skipped = [], [], []
    pending: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            batch = np.stack(pending)
            inputs.append(batch if crop_level else crop_batch(batch, spec))
            pending.clear()

    for index, path in enumerate(rows.paths):
        try:
            pending.append(_decode(path, spec, crop_level))
        except DecodeError as error:  # one bad file must not stop training; it is counted and shown instead
            skipped.append((str(path.relative_to(rows.source.parent)),
                            f"{error.failure.reason.value}: {error.failure.detail}"))
            continue
        kept.append(index)
        if len(pending) == DECODE_CHUNK:
            flush()
    flush()
    images = np.concatenate(inputs) if inputs else np.zeros((0, *spec.input_shape), np.float32)
    return images, np.asarray(kept, int), skipped


def _check_usable(spec: ModelSpec, labels: np.ndarray, rows: LabelledRows, skipped: int) -> None:
    if len(labels) < MIN_USABLE_ROWS:
        raise TrainingDataError(f"{rows.source} has {len(labels)} usable rows ({skipped} images could not be "
                                f"decoded, {rows.unlabelled} rows had no label); training needs at least "
                                f"{MIN_USABLE_ROWS}.")
    values = np.unique(labels)
    if len(values) < 2:
        what = {0.0: "male", 1.0: "female"}[float(values[0])] if spec.output is OutputKind.GENDER_SOFTMAX \
            else f"{float(values[0]):g}"
        raise TrainingDataError(f"Every usable row of {rows.source} has the label {what}; {spec.name} needs "
                                "examples of more than one class to learn anything.")


def load_training_set(data: Path, spec: ModelSpec, *, label_column: str | None = None,
                      class_map: dict[str, float] | None = None, crop_level: bool = False,
                      group_column: str | None = None) -> TrainingSet:
    """Read, decode and check the data set at ``data`` (a CSV, or a folder with ``manifest.csv``) for ``spec``."""
    rows = read_rows(resolve_csv(data), spec, label_column=label_column, class_map=class_map,
                     group_column=group_column)
    images, kept, skipped = decode_inputs(rows, spec, crop_level=crop_level)
    labels = rows.labels[kept]
    _check_usable(spec, labels, rows, len(skipped))
    # A ready-made crop has no face to tell the gender from: the regressor gets neutral 0.5/0.5 instead.
    gender = None if rows.gender is None or crop_level else rows.gender[kept]
    groups = None if rows.groups is None else rows.groups[kept]
    return TrainingSet(rows, images, labels, gender, groups, skipped, tuple(rows.paths[i] for i in kept))

