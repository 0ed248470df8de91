"""What a job is submitted from: a folder, an object store prefix or a list of paths and URIs, in batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from annotator.errors import SourceError
from annotator.images.discovery import (
    Discovered,
    FoundImage,
    Rejected,
    discover,
    discover_listed,
    discover_objects,
)
from annotator.images.lists import read_list
from annotator.images.sources import is_uri, normalised


def checked_folder(source: Path) -> Path:
    """The folder to read, resolved; a missing path or a file is a one-line :class:`SourceError`."""
    source = source.expanduser().resolve()
    if not source.exists():
        raise SourceError(f"Folder not found: {source}.")
    if not source.is_dir():
        raise SourceError(f"Not a folder: {source}. Submit the folder that holds the images.")
    return source


@dataclass(frozen=True)
class ImageSource:
    """What a job is submitted from, and its images in batches (discovered as they are taken)."""

    name: str  # recorded as the job's source
    batches: Iterator[Discovered]
    nothing_found: str  # the error when no batch holds anything
    size: int | None = None  # how many files, when known before the first batch (a folder)


def _folder_batches(found: list[FoundImage], failures: list[Rejected], batch_size: int) -> Iterator[Discovered]:
    for start in range(0, len(found), batch_size):
        yield Discovered(found[start : start + batch_size])
    if failures:
        yield Discovered(failures=list(failures))


def open_source(source: str | Path | None = None, *, from_list: str | Path | None = None,
                batch_size: int) -> ImageSource:
    """The images of a folder, a URI prefix (``s3://bucket/prefix``, ``gs://...``) or a list of paths and URIs.

    A folder is checked now; a prefix is listed and a list read only when the first batch is taken.
    """
    if (source is None) == (from_list is None):
        raise SourceError("Give one source: a folder, a URI such as s3://bucket/prefix, or --from-list FILE.")
    if from_list is not None:
        where = str(from_list) if is_uri(str(from_list)) else normalised(from_list)

        def listed() -> Iterator[Discovered]:
            yield from discover_listed(read_list(where), batch_size)

        return ImageSource(where, listed(), f"{where} lists no paths or URIs.")
    if is_uri(str(source)):
        uri = normalised(str(source))
        return ImageSource(uri, discover_objects(uri, batch_size),
                           f"No objects found under {uri} (looked under every sub-prefix, by content).")
    root = checked_folder(Path(source))  # type: ignore[arg-type]
    found, failures = discover(root)  # hashed up front: a local disk answers fast, and the order stays stable
    return ImageSource(str(root), _folder_batches(found, failures, batch_size),
                       f"No images found in {root} (looked in every sub-folder, by content).",
                       size=len(found) + len(failures))



def as_source(source: ImageSource | str | Path, chunk_size: int) -> ImageSource:
    """``source`` itself, or the folder or URI it names opened in batches of ``chunk_size``."""
    return source if isinstance(source, ImageSource) else open_source(source, batch_size=chunk_size)


def first_batch(source: ImageSource) -> Discovered:
    """The first batch that holds anything, or :class:`SourceError` when the source holds nothing."""
    for batch in source.batches:
        if batch.found or batch.failures:
            return batch
    raise SourceError(source.nothing_found)


def unrecorded(batch: Discovered, recorded: set[str]) -> Discovered:
    """``batch`` without the files whose paths are in ``recorded`` (a resumed job has them already)."""
    if not recorded:
        return batch
    return Discovered([f for f in batch.found if str(f.path) not in recorded],
                      [r for r in batch.failures if str(r[0]) not in recorded])
