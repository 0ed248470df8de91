"""Find the images of a folder, an object store prefix or a list, and hash them (streamed); images are recognised
by their first bytes, not their names."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from annotator.images.decoding import DecodeFailure, ReasonCode, read_failure
from annotator.images.sources import is_uri, iter_objects, name_of, open_input

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
_SNIFF_BYTES = 16
REMOTE_HASHERS = 8
"""Objects hashed side by side: each request to a store waits on the network, so several overlap."""


@dataclass(frozen=True)
class FoundImage:
    """A file or object whose content is an image."""

    path: Path | str  # a str is a URI (or a path from a list)
    sha256: str
    size: int
    format: str | None


def sniff_format(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"23456" and head[2:3].isspace():
        return "PPM"
    return None


def _hash_stream(handle: IO[bytes]) -> tuple[str, int, str | None]:
    digest = hashlib.sha256()
    size = 0
    head = b""
    for block in iter(lambda: handle.read(1 << 20), b""):
        if not head:
            head = block[:_SNIFF_BYTES]
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size, sniff_format(head)


def hash_file(path: Path) -> tuple[str, int, str | None]:
    """(SHA-256 hex, size in bytes, sniffed format) of a file, read in 1 MiB blocks."""
    with path.open("rb") as handle:
        return _hash_stream(handle)


def hash_location(location: str | Path, size: int | None = None) -> tuple[str, int, str | None]:
    """:func:`hash_file` of a path or a URI, streamed in 1 MiB blocks; ``size`` (listed) spares a request."""
    if not is_uri(location):
        return hash_file(Path(location))
    with open_input(str(location), size) as handle:
        return _hash_stream(handle)


def iter_files(root: Path) -> Iterator[Path]:
    """Every non-hidden file below ``root`` in a stable order. Symlinked folders are followed, each real folder
    once: a link that loops back, or a second link to the same folder, adds nothing."""
    walked: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in walked:
            subfolders[:] = []
            continue
        walked.add(real)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def discover(root: Path) -> tuple[list[FoundImage], list[tuple[Path, DecodeFailure]]]:
    """Images under ``root`` (by content), and files named like images that are not or cannot be read."""
    found: list[FoundImage] = []
    failures: list[tuple[Path, DecodeFailure]] = []
    for path in iter_files(root):
        looks_like_image = path.suffix.lower() in IMAGE_SUFFIXES
        try:
            sha256, size, fmt = hash_file(path)
        except OSError as error:
            if looks_like_image:
                failures.append((path, DecodeFailure(ReasonCode.UNREADABLE, f"cannot read the file: {error.strerror or error}")))
            continue
        if fmt is not None:
            found.append(FoundImage(path, sha256, size, fmt))
        elif looks_like_image:
            what = "the file is empty" if size == 0 else "its content is not a known image format"
            failures.append((path, DecodeFailure(ReasonCode.NOT_AN_IMAGE, f"named like an image but {what}")))
    return found, failures


Rejected = tuple[Path | str, DecodeFailure]


@dataclass
class Discovered:
    """One batch of a streamed discovery: images, and files that look like images but are not or cannot be read."""

    found: list[FoundImage] = field(default_factory=list)
    failures: list[Rejected] = field(default_factory=list)


def _examine(location: str, size: int | None, listed: bool) -> FoundImage | Rejected | None:
    """A :class:`FoundImage` or a rejection; None for what a folder walk leaves out (not named like an image)."""
    looks_like_image = listed or Path(name_of(location)).suffix.lower() in IMAGE_SUFFIXES
    try:
        sha256, size, fmt = hash_location(location, size)
    except Exception as error:
        if not isinstance(error, OSError) and not is_uri(location):
            raise
        return (location, read_failure(error, location)) if looks_like_image else None
    if fmt is not None:
        return FoundImage(location, sha256, size, fmt)
    if not looks_like_image:
        return None
    what = "it is empty" if size == 0 else "its content is not a known image format"
    return location, DecodeFailure(ReasonCode.NOT_AN_IMAGE, f"{'listed' if listed else 'named like'} an image "
                                                            f"but {what}")


def _examined(pool: ThreadPoolExecutor, items: Sequence[tuple[str, int | None]], listed: bool) -> Discovered:
    batch = Discovered()
    for result in pool.map(lambda item: _examine(item[0], item[1], listed), items):
        if isinstance(result, FoundImage):
            batch.found.append(result)
        elif result is not None:
            batch.failures.append(result)
    return batch


def discover_objects(prefix: str, batch_size: int) -> Iterator[Discovered]:
    """The images under a URI prefix, one listing page of ``batch_size`` objects at a time, hashed side by side.

    As in a folder, every object is read; those named like images that are not (or cannot be read) are rejected
    with a reason code, the rest are left out. Only one page is held in memory.
    """
    with ThreadPoolExecutor(REMOTE_HASHERS, thread_name_prefix="annotate-hash") as pool:
        for page in iter_objects(prefix, page_size=batch_size):
            batch = _examined(pool, [(item.location, item.size) for item in page], listed=False)
            if batch.found or batch.failures:
                yield batch


def discover_listed(locations: Sequence[str], batch_size: int) -> Iterator[Discovered]:
    """The images of a list of paths and URIs, ``batch_size`` at a time; every entry that is not a readable
    image is rejected with its reason code (``missing`` for an object that is not there)."""
    with ThreadPoolExecutor(REMOTE_HASHERS, thread_name_prefix="annotate-hash") as pool:
        for start in range(0, len(locations), batch_size):
            yield _examined(pool, [(location, None) for location in locations[start : start + batch_size]],
                            listed=True)
