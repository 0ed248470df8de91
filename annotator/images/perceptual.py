"""Perceptual hashes of images and near-duplicate groups: re-encoded or resized copies of one photo.

The hash is ``imagehash.phash`` with ``hash_size=16``: the signs of the 16x16 lowest frequencies of the DCT of
the picture at 64x64 grey, 256 bits written as 64 hex digits. It changes little when a photo is re-encoded,
resized or slightly brightened, and a lot when the content moves. Two hashes are compared by their Hamming
distance (bits that differ); images linked by chains of pairs within the threshold form one group.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from annotator.images.decoding import MAX_IMAGE_PIXELS, DecodeError, decode_photo

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

HASH_SIZE = 16
HASH_BITS = HASH_SIZE * HASH_SIZE
HEX_DIGITS = HASH_BITS // 4
DEFAULT_THRESHOLD = 24
"""Largest Hamming distance (of 256 bits) between near-duplicates. Measured on the 1,382 faces of gender-60px
and 1,500 UTKFace faces: JPEG re-encoding at quality 40-90 or halving the size moved a hash by at most 8 bits
on UTKFace's 200x200 faces (99% within 6) and at most 24 on gender-60px's 60x60 ones (99% within 12). Pairs of
different files within 48 bits: 3 of 954,271 in gender-60px and 15 of 1,124,250 in UTKFace, all of them the
same photo stored twice. The 64-bit hash of ``hash_size=8`` could not keep these apart: at 8 bits it joined 148
and 297 pairs of different faces. A 5% crop moves a hash as far as another face: crops are found by
``--group-by person`` (annotator.faces.embedding), not here."""
FIELD_RADIUS = 1
"""Bits in which a field may differ and still be looked up: 0 or 1 (one bit flipped: width + 1 lookups)."""
PAIR_BLOCK = 1 << 20
"""Candidate pairs checked at once: bounds memory to about 100 MB."""
HASH_DRAFT_SIDE = 256
"""JPEGs hashed after the fact are decoded at a reduced scale down to this side (the hash is taken at 64x64)."""
_WORD = 64


def perceptual_hash(image: Image.Image) -> str:
    """The 256-bit DCT hash of a decoded picture, as 64 hex digits."""
    import imagehash

    return str(imagehash.phash(image, hash_size=HASH_SIZE))


def hamming(first: str, second: str) -> int:
    """Bits that differ between two hashes of :func:`perceptual_hash`."""
    return (int(first, 16) ^ int(second, 16)).bit_count()


def hash_words(hashes: Sequence[str]) -> np.ndarray:
    """Hex hashes as an (n, 4) uint64 array, most significant word first."""
    words = np.zeros((len(hashes), HASH_BITS // _WORD), np.uint64)
    for row, text in enumerate(hashes):
        if len(text) != HEX_DIGITS:
            raise ValueError(f"A perceptual hash has {HEX_DIGITS} hex digits. Received: {text!r}.")
        for column in range(words.shape[1]):
            words[row, column] = int(text[column * 16 : (column + 1) * 16], 16)
    return words


def _fields(threshold: int, words: int) -> list[tuple[int, int, int]]:
    """(word, shift, width) of bit fields covering every bit once, none across two words, so many that two
    hashes within ``threshold`` bits differ by at most :data:`FIELD_RADIUS` bits in one of them."""
    count = max(words, threshold // (FIELD_RADIUS + 1) + 1)  # count * (radius + 1) > threshold: pigeonhole
    per_word = [count // words + (1 if w < count % words else 0) for w in range(words)]
    fields = []
    for word, parts in enumerate(per_word):
        widths = [_WORD // parts + (1 if i < _WORD % parts else 0) for i in range(parts)]
        for shift, width in zip(np.cumsum([0, *widths[:-1]]), widths):
            fields.append((word, int(shift), width))
    return fields


def _equal_key_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with ``keys[i] == keys[j]`` and i before j in key order, found by one sort."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    run_end = np.repeat(np.r_[starts[1:], len(order)], np.diff(np.r_[starts, len(order)]))
    counts = run_end - np.arange(len(order)) - 1  # partners after each position in its run
    first = np.repeat(np.arange(len(order)), counts)
    offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return order[first], order[first + offset + 1]


def near_duplicate_pairs(words: np.ndarray, threshold: int) -> np.ndarray:
    """(i, j) index pairs, i < j, of hashes (rows of :func:`hash_words`) at most ``threshold`` bits apart.

    Multi-index hashing: the bits are cut into fields so that two hashes within ``threshold`` bits differ by at
    most one bit in at least one field (pigeonhole). Two fields differ by at most one bit exactly when they
    agree with some one bit blanked, so for every field and bit the hashes are sorted by the field with that
    bit blanked, and only hashes in one run are compared in full, with vectorised popcounts. A pair may be
    reported more than once.
    """
    found: list[np.ndarray] = [np.zeros((0, 2), np.int64)]
    for word, shift, width in _fields(threshold, words.shape[1]):
        keys = (words[:, word] >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        for bit in range(width) if FIELD_RADIUS else [width]:
            first, second = _equal_key_pairs(keys & ~np.uint64(1 << bit))
            for top in range(0, len(first), PAIR_BLOCK):
                a, b = first[top : top + PAIR_BLOCK], second[top : top + PAIR_BLOCK]
                close = np.bitwise_count(words[a] ^ words[b]).sum(axis=1, dtype=np.int64) <= threshold
                found.append(np.sort(np.stack([a[close], b[close]], axis=1), axis=1))
    return np.concatenate(found)


def near_duplicate_groups(hashes: Sequence[str | None], threshold: int = DEFAULT_THRESHOLD) -> list[int]:
    """A group number per hash: hashes linked by chains of pairs within ``threshold`` bits share one.

    Groups are numbered in order of their first member, so the same hashes in the same order always give the
    same numbers. A missing hash (None: the image could not be read) is a group of its own.
    """
    if not 0 <= threshold < HASH_BITS:
        raise ValueError(f"The threshold is a number of bits in 0..{HASH_BITS - 1}. Received: {threshold}.")
    known = np.array([index for index, value in enumerate(hashes) if value is not None], dtype=np.int64)
    parent = np.arange(len(hashes))

    def root(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    pairs = near_duplicate_pairs(hash_words([hashes[i] for i in known]), threshold) if len(known) else []  # type: ignore[misc]
    for i, j in pairs:
        a, b = root(int(known[i])), root(int(known[j]))
        if a != b:
            parent[max(a, b)] = min(a, b)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(root(index), len(numbers)) for index in range(len(hashes))]


def stored_phashes(session: Session, sha256s: Collection[str] | None = None, *,
                   max_pixels: int = MAX_IMAGE_PIXELS) -> dict[str, str | None]:
    """The perceptual hash of each image by SHA-256 (of every recorded image when ``sha256s`` is None).

    Images recorded before hashes existed, or only ever skipped by later jobs, are decoded once now and their
    hash is stored through ``session`` (the caller commits). An image whose file is gone or changed gives None.
    """
    from sqlalchemy import select, update

    from db.models import Image as ImageRow
    from db.queries import QUERY_BATCH, batched

    query = select(ImageRow.id, ImageRow.sha256, ImageRow.path, ImageRow.phash)
    if sha256s is None:
        found = list(session.execute(query))
    else:
        found = [row for chunk in batched(sorted(set(sha256s)), QUERY_BATCH)
                 for row in session.execute(query.where(ImageRow.sha256.in_(chunk)))]
    hashes: dict[str, str | None] = {}
    computed = []
    for image_id, sha256, path, phash in found:
        if phash is None:
            try:
                picture = decode_photo(Path(path), max_pixels=max_pixels, expected_sha256=sha256,
                                       draft_side=HASH_DRAFT_SIDE)
            except DecodeError:
                hashes[sha256] = None
                continue
            phash = perceptual_hash(picture)
            computed.append({"id": image_id, "phash": phash})
        hashes[sha256] = phash
    if computed:
        session.execute(update(ImageRow), computed)
    return hashes
