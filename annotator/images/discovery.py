"""Find the images under a folder and hash them; images are recognised by their first bytes, not their names."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from annotator.images.decoding import DecodeFailure, ReasonCode

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
_SNIFF_BYTES = 16


@dataclass(frozen=True)
class FoundImage:
    """A file whose content is an image."""

    path: Path
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


def hash_file(path: Path) -> tuple[str, int, str | None]:
    """(SHA-256 hex, size in bytes, sniffed format) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            if not head:
                head = block[:_SNIFF_BYTES]
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size, sniff_format(head)


def iter_files(root: Path) -> Iterator[Path]:
    """Every non-hidden file below ``root`` in a stable order; symlinked folders are not followed."""
    for folder, subfolders, files in os.walk(root):
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
