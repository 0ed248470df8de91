"""The report's near-duplicate images: groups of the stored perceptual hashes (``images.phash``), as
:func:`annotator.images.perceptual.near_duplicate_groups` forms them for splits, shown by their faces."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.images.perceptual import DEFAULT_THRESHOLD, HASH_BITS, near_duplicate_groups, stored_phashes
from annotator.inspection.report.gather import FaceTable, Scope
from annotator.inspection.report.html import Tile, escape, strip
from db.models import Image, JobImage

GROUPS_SHOWN = 8
MEMBERS_SHOWN = 6


@dataclass(frozen=True)
class Group:
    """Near-duplicate images: paths and the table position of each one's first face (-1: none in the report)."""

    paths: list[str]
    positions: list[int]
    size: int


@dataclass(frozen=True)
class DuplicateFacts:
    """Near-duplicate groups among the hashed images of a scope, largest first."""

    hashed: int
    unreadable: int  # images that could not be hashed (file gone or changed)
    groups: list[Group] = field(default_factory=list)  # the first GROUPS_SHOWN
    total_groups: int = 0
    images_in_groups: int = 0


def _first_faces(table: FaceTable, image_ids: np.ndarray) -> np.ndarray:
    """Table position of the first face of each image, -1 for an image with no face in the table."""
    if not len(table):
        return np.full(len(image_ids), -1, np.int64)
    order = np.argsort(table.image_id, kind="stable")
    ordered = table.image_id[order]
    where = np.clip(np.searchsorted(ordered, image_ids), 0, len(order) - 1)
    return np.where(ordered[where] == image_ids, order[where], -1)


def find(session: Session, scope: Scope, table: FaceTable, *, max_pixels: int) -> DuplicateFacts:
    """Group the scope's images by perceptual hash; images not hashed yet are hashed now (the caller commits)."""
    query = select(Image.id, Image.sha256, Image.path)
    if scope.members is not None:
        query = query.where(Image.id.in_(select(JobImage.image_id).where(scope.members)))
    images = session.execute(query.order_by(Image.id)).all()
    hashes = stored_phashes(session, None if scope.members is None else [row.sha256 for row in images],
                            max_pixels=max_pixels)
    known = [row for row in images if hashes.get(row.sha256) is not None]
    numbers = np.array(near_duplicate_groups([hashes[row.sha256] for row in known]), np.int64)
    sizes = np.bincount(numbers) if len(numbers) else np.zeros(0, np.int64)
    shared = np.flatnonzero(sizes > 1)
    shared = shared[np.argsort(-sizes[shared], kind="stable")]  # largest first, then by first member
    groups = []
    for number in shared[:GROUPS_SHOWN]:
        members = np.flatnonzero(numbers == number)[:MEMBERS_SHOWN]
        ids = np.array([known[i].id for i in members], np.int64)
        groups.append(Group([known[i].path for i in members], [int(p) for p in _first_faces(table, ids)],
                            int(sizes[number])))
    return DuplicateFacts(len(known), len(images) - len(known), groups, len(shared), int(sizes[shared].sum()))


def positions(facts: DuplicateFacts) -> list[np.ndarray]:
    """The table positions whose thumbnails the section shows."""
    return [np.array([p for p in group.positions if p >= 0], np.int64) for group in facts.groups]


def markup(facts: DuplicateFacts, tiles: Callable[[Sequence[int], Sequence[str] | None], list[Tile]]) -> list[str]:
    """The near-duplicates part of the quality section."""
    groups = "group" if facts.total_groups == 1 else "groups"
    parts = [(f"<h3>Near-duplicate images</h3><p>{facts.total_groups:,} {groups} holding {facts.images_in_groups:,} "
              f"of {facts.hashed:,} images whose perceptual hashes differ in at most {DEFAULT_THRESHOLD} of "
              f"{HASH_BITS} bits (re-encoded or resized copies of one picture; exports keep each group in one "
              "split).</p>")]
    if facts.unreadable:
        images = "image" if facts.unreadable == 1 else "images"
        parts.append(f'<p class="muted">{facts.unreadable:,} {images} could not be hashed (the file cannot be '
                     "decoded, is gone, or changed since it was submitted).</p>")
    for number, group in enumerate(facts.groups, start=1):
        with_face = [p for p in group.positions if p >= 0]
        without = [path for path, p in zip(group.paths, group.positions) if p < 0]
        more = f", {group.size - len(group.paths)} more not shown" if group.size > len(group.paths) else ""
        parts.append(f'<div class="group"><b>group {number}</b> ({group.size} images{more})'
                     + (strip(tiles(with_face, None)) if with_face else "")
                     + "".join(f'<div class="muted">{escape(path)} (no face in this report)</div>' for path in without)
                     + "</div>")
    if facts.total_groups > len(facts.groups):
        parts.append(f'<p class="muted">and {facts.total_groups - len(facts.groups):,} more groups</p>')
    return parts
