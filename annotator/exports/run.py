"""Run one export: query the faces, select and split them, write the chosen format and its manifest."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from sqlalchemy.orm import Session

from annotator.errors import ExportError
from annotator.exports.grouping import SplitGroups, split_groups
from annotator.exports.manifest import build_manifest, manifest_path, split_counts, write_manifest
from annotator.exports.options import FORMATS, SPLIT_COLUMN_FORMATS, ExportOptions
from annotator.exports.query import FaceRow, chain_for, face_rows
from annotator.exports.selection import gender_class, regressors, resolve_attributes, select_rows
from annotator.exports.splits import assign_splits
from annotator.exports.staging import staged
from annotator.images.sources import is_folder, is_uri, join, name_of, normalised, upload

TEXT_FORMATS = ("csv", "jsonl", "condition-data")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    rows: int
    files: list[Path | str]  # empty when written to standard output; URIs (str) when written to a store
    manifest: Path | str | None
    counts: dict[str, dict[str, int]]  # per split (or "all"), its total and count per gender class
    groups: SplitGroups | None = None  # how the split grouped the images; None when not split


def split_file(output: Path, split: str) -> Path:
    """``labels.csv`` -> ``labels.train.csv``: the file of one split for formats without a split column."""
    return output.with_name(f"{output.stem}.{split}{output.suffix}")


def check_output(options: ExportOptions, output: Path | None) -> None:
    """Refuse, before any work, an output that is missing, in the way, or of the wrong kind."""
    if options.format not in FORMATS:
        raise ExportError(f"Unknown format {options.format!r}. Valid formats: {', '.join(FORMATS)}.")
    if options.group_by != "image" and options.split is None:
        raise ExportError(f"--group-by {options.group_by} says what a split keeps together; add --split, e.g. "
                          "--split train=0.8,val=0.1,test=0.1.")
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
    if not splits or options.format in SPLIT_COLUMN_FORMATS:
        _write_file(options, rows, output, attributes, with_split=bool(splits))
        return [output]
    files = []
    for split in splits:
        files.append(split_file(output, split))
        _write_file(options, [row for row in rows if row.split == split], files[-1], attributes, with_split=False)
    return files


def _check_store_output(options: ExportOptions, uri: str) -> None:
    if options.format not in FORMATS:
        check_output(options, None)
    if is_folder(uri):
        what = "not empty; choose a new prefix for the export" if options.format == "folders" else (
            f"a prefix that holds objects; --format {options.format} writes a file. Give a file name")
        raise ExportError(f"{uri} is {what}.")


def _export_to_store(session: Session, options: ExportOptions, uri: str, stdout: TextIO,
                     echo: Callable[[str], None] | None) -> ExportResult:
    """Write the export into a temporary folder, then upload every file to ``uri`` in the same layout."""
    _check_store_output(options, uri)
    parent = uri.rsplit("/", 1)[0]
    with tempfile.TemporaryDirectory(prefix="annotate-export-") as scratch:
        local = Path(scratch) / name_of(uri)
        result = run_export(session, options, local, stdout, echo)

        def remote(path: Path | str) -> str:
            return join(parent, Path(path).relative_to(scratch).as_posix())

        written = sorted(path for path in Path(scratch).rglob("*") if path.is_file())
        try:
            for path in written:
                upload(path, remote(path))
        except OSError as error:
            raise ExportError(f"Cannot write the export to {uri}: {error}.") from None
    manifest = None if result.manifest is None else remote(result.manifest)
    return replace(result, files=[remote(path) for path in result.files], manifest=manifest)


def run_export(session: Session, options: ExportOptions, output: Path | str | None, stdout: TextIO,
               echo: Callable[[str], None] | None = None) -> ExportResult:
    """Export the selected faces as ``options`` ask; to ``stdout`` (no manifest) when ``output`` is None, to an
    object store when it is a URI (``s3://bucket/labels.csv``).

    A split first hashes the images that have no perceptual hash yet, through ``session`` (the caller commits);
    ``echo`` hears about slow steps (describing faces for ``group_by="person"``).
    """
    if output is not None and is_uri(str(output)):
        return _export_to_store(session, options, normalised(str(output)), stdout, echo)
    output = None if output is None else Path(output)
    check_output(options, output)
    # Teacher values need no chain: they can be exported before any model is trained.
    active = [] if options.source == "teachers" else [version.name for version in chain_for(session, options.job_id)]
    attributes = resolve_attributes(options.attributes, options.format, active)
    found = list(face_rows(session, options.job_id, options.source))
    rows = select_rows(found, source=options.source, attributes=attributes, min_confidence=options.min_confidence)
    if not rows:
        raise ExportError(_no_rows_message(options, len(found), attributes))
    groups = None
    if options.split is not None:
        groups = split_groups(session, rows, threshold=options.duplicate_threshold, group_by=options.group_by,
                              echo=echo)
        assign_splits(rows, options.split, options.seed, gender_class, groups.key_of)
    counts = split_counts(rows, list(options.split or ()))
    if output is None:
        _write_text(options.format, rows, stdout, regressors(attributes), with_split=options.split is not None)
        return ExportResult(len(rows), [], None, counts, groups)
    is_folder = options.format == "folders"
    with staged(output) as standin:
        files = _write(options, rows, standin, regressors(attributes))
        # Names relative to the manifest's folder, so an export can be moved as a whole.
        relative = [f.relative_to(standin).as_posix() if is_folder else f.name for f in files]
        written = manifest_path(standin, is_folder)
        write_manifest(build_manifest(options, rows, attributes, relative, counts, groups=groups), written)

    def placed(path: Path) -> Path:
        return output.parent / path.relative_to(standin.parent)

    return ExportResult(len(rows), [placed(f) for f in files], placed(written), counts, groups)
