"""Run one export: query the faces, select and split them, write the chosen format and its manifest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sqlalchemy.orm import Session

from annotator.errors import ExportError
from annotator.exports.manifest import build_manifest, manifest_path, split_counts, write_manifest
from annotator.exports.options import FORMATS, IMAGE_EXPORT_FORMATS, SPLIT_COLUMN_FORMATS, ExportOptions
from annotator.exports.query import FaceRow, chain_for, face_rows
from annotator.exports.selection import gender_class, regressors, resolve_attributes, select_rows
from annotator.exports.splits import assign_splits

TEXT_FORMATS = ("csv", "jsonl", "condition-data")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    rows: int
    files: list[Path]  # empty when written to standard output
    manifest: Path | None
    counts: dict[str, dict[str, int]]  # per split (or "all"), its total and count per gender class


def split_file(output: Path, split: str) -> Path:
    """``labels.csv`` -> ``labels.train.csv``: the file of one split for formats without a split column."""
    return output.with_name(f"{output.stem}.{split}{output.suffix}")


def check_output(options: ExportOptions, output: Path | None) -> None:
    """Refuse, before any work, an output that is missing, in the way, or of the wrong kind."""
    if options.format not in FORMATS:
        raise ExportError(f"Unknown format {options.format!r}. Valid formats: {', '.join(FORMATS)}.")
    per_split_files = options.split is not None and options.format not in SPLIT_COLUMN_FORMATS
    if output is None:
        if options.format not in TEXT_FORMATS or per_split_files:
            raise ExportError(f"--format {options.format}{' with --split' if per_split_files else ''} writes "
                              "files: give the output with -o/--output.")
        return
    if options.format == "folders":
        if output.exists() and not output.is_dir():
            raise ExportError(f"{output} is a file; --format folders writes a folder. Choose another -o/--output.")
        if output.is_dir() and any(output.iterdir()):
            raise ExportError(f"{output} already exists and is not empty; choose a new folder for the export.")
    elif output.is_dir():
        raise ExportError(f"{output} is a folder; --format {options.format} writes a file. Give a file name.")


def _no_rows_message(options: ExportOptions, found: int, attributes: list[str]) -> str:
    scope = f" of job {options.job_id}" if options.job_id is not None else ""
    if not found and options.source == "teachers":
        return f"No faces{scope} have teacher values. Run `annotate teach FOLDER` first."
    if not found:
        return f"No annotated faces{scope} to export. Submit a folder with `annotate submit FOLDER` first."
    filters = []
    if options.source == "labels":
        filters.append(f"--source labels (a label for each of {', '.join(attributes)})")
    if options.min_confidence:
        filters.append(f"--min-confidence {options.min_confidence:g}")
    return f"None of the {found} annotated faces{scope} pass {' and '.join(filters)}; nothing to export."


def _write_text(fmt: str, rows: Sequence[FaceRow], out: TextIO, attributes: list[str], with_split: bool) -> None:
    if fmt == "condition-data":
        from annotator.exports.formats.condition_data import write_condition_data

        write_condition_data(rows, out, attributes)
    elif fmt == "jsonl":
        from annotator.exports.formats.jsonl import write_jsonl

        write_jsonl(rows, out, attributes, with_split)
    else:
        from annotator.exports.formats.csv import write_csv

        write_csv(rows, out, attributes, with_split)


def _write_file(options: ExportOptions, rows: Sequence[FaceRow], path: Path, attributes: list[str],
                with_split: bool) -> None:
    if options.format == "parquet":
        from annotator.exports.formats.parquet import write_parquet

        write_parquet(rows, path, attributes, with_split)
    elif options.format == "tfrecord":
        from annotator.exports.formats.tfrecord import write_tfrecord

        write_tfrecord(rows, path, attributes, options.image_format)
    else:
        with path.open("w", newline="", encoding="utf-8") as handle:
            _write_text(options.format, rows, handle, attributes, with_split)


def _write(options: ExportOptions, rows: list[FaceRow], output: Path, attributes: list[str]) -> list[Path]:
    splits = list(options.split or ())
    if options.format == "folders":
        from annotator.exports.formats.folders import write_folders

        write_folders(rows, output, splits)
        return [output / split for split in splits] or [output]
    output.parent.mkdir(parents=True, exist_ok=True)
    if not splits or options.format in SPLIT_COLUMN_FORMATS:
        _write_file(options, rows, output, attributes, with_split=bool(splits))
        return [output]
    files = []
    for split in splits:
        files.append(split_file(output, split))
        _write_file(options, [row for row in rows if row.split == split], files[-1], attributes, with_split=False)
    return files


def run_export(session: Session, options: ExportOptions, output: Path | None, stdout: TextIO) -> ExportResult:
    """Export the selected faces as ``options`` ask; to ``stdout`` (no manifest) when ``output`` is None."""
    check_output(options, output)
    # Teacher values need no chain: they can be exported before any model is trained.
    active = [] if options.source == "teachers" else [version.name for version in chain_for(session, options.job_id)]
    attributes = resolve_attributes(options.attributes, options.format, active)
    found = list(face_rows(session, options.job_id, options.source))
    rows = select_rows(found, source=options.source, attributes=attributes, min_confidence=options.min_confidence)
    if not rows:
        raise ExportError(_no_rows_message(options, len(found), attributes))
    if options.format in IMAGE_EXPORT_FORMATS:
        from annotator.exports.aligned_faces import aligned_faces

        aligned_faces(rows)  # refuses faces it cannot provide before anything is written
    if options.split is not None:
        assign_splits(rows, options.split, options.seed, gender_class)
    counts = split_counts(rows, list(options.split or ()))
    if output is None:
        _write_text(options.format, rows, stdout, regressors(attributes), with_split=options.split is not None)
        return ExportResult(len(rows), [], None, counts)
    files = _write(options, rows, output, regressors(attributes))
    is_folder = options.format == "folders"
    # Names relative to the manifest's folder, so an export can be moved as a whole.
    relative = [f.relative_to(output).as_posix() if is_folder else f.name for f in files]
    written = manifest_path(output, is_folder)
    write_manifest(build_manifest(options, rows, attributes, relative, counts), written)
    return ExportResult(len(rows), files, written, counts)
