"""What must stay on one side of a split: faces of one image, near-duplicate images, and (asked) one person.

Every image starts as its own group; perceptual hashes within the threshold link near-duplicates (re-encoded
or resized copies), and with ``group_by="person"`` faces whose descriptors lie close link their images. The
links are closed transitively, so a copy of a copy lands with the original too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from annotator.exports.options import GROUP_BY
from annotator.exports.query import FaceRow
from annotator.images.perceptual import DEFAULT_THRESHOLD, near_duplicate_groups, stored_phashes

Echo = Callable[[str], None]


@dataclass(frozen=True)
class SplitGroups:
    """The group key of every image (the smallest SHA-256 of its group) and how the groups came about."""

    key_of: dict[str, str]
    threshold: int
    near_duplicate_groups: int  # groups of two or more images linked by their perceptual hashes
    near_duplicate_images: int
    unhashed: int  # images whose file could not be read to hash it: each is only grouped with its own faces
    group_by: str = "image"
    person_threshold: float | None = None
    person_groups: int | None = None  # groups of faces of two or more images found to be one person
    person_faces: int | None = None

    def to_manifest(self) -> dict[str, Any]:
        """The counts recorded in an export's manifest."""
        counted: dict[str, Any] = {
            "images": len(self.key_of),
            "groups": len(set(self.key_of.values())),
            "near_duplicates": {"threshold": self.threshold, "groups": self.near_duplicate_groups,
                                "images": self.near_duplicate_images, "unhashed": self.unhashed},
        }
        if self.group_by == "person":
            counted["persons"] = {"threshold": self.person_threshold, "groups": self.person_groups,
                                  "faces": self.person_faces}
        return counted

    def describe(self) -> str:
        """One line for the user: how many groups the split kept whole and why."""
        line = (f"Split {len(self.key_of)} images as {len(set(self.key_of.values()))} groups: "
                f"{self.near_duplicate_groups} groups of near-duplicates ({self.near_duplicate_images} images, "
                f"hashes within {self.threshold} bits)")
        if self.unhashed:
            line += f"; {self.unhashed} images could not be read to hash them"
        if self.group_by == "person":
            line += (f"; {self.person_groups} people with faces in several images ({self.person_faces} faces, "
                     f"descriptors within {self.person_threshold:g})")
        return line + "."


class _Union:
    def __init__(self, keys: Iterable[str]) -> None:
        self.parent = {key: key for key in keys}

    def find(self, key: str) -> str:
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def link(self, keys: Sequence[str]) -> None:
        roots = sorted({self.find(key) for key in keys})
        for other in roots[1:]:
            self.parent[other] = roots[0]  # the smallest key is the root, so keys never depend on order


def _linked(members: Sequence[Any], groups: Sequence[int]) -> list[list[Any]]:
    by_group: dict[int, list[Any]] = {}
    for member, group in zip(members, groups):
        by_group.setdefault(group, []).append(member)
    return [found for found in by_group.values() if len(found) > 1]


def split_groups(session: Session, rows: Sequence[FaceRow], *, threshold: int = DEFAULT_THRESHOLD,
                 group_by: str = "image", person_threshold: float | None = None,
                 echo: Echo | None = None) -> SplitGroups:
    """Group the images of ``rows`` for a split (hashing images that have no perceptual hash yet)."""
    if group_by not in GROUP_BY:
        raise ValueError(f"Unknown grouping {group_by!r}. Valid: {', '.join(GROUP_BY)}.")
    shas = sorted({row.sha256 for row in rows})
    hashes = stored_phashes(session, shas)
    union = _Union(shas)
    near = _linked(shas, near_duplicate_groups([hashes.get(sha) for sha in shas], threshold))
    for members in near:
        union.link(members)
    person_groups = person_faces = None
    if group_by == "person":
        from annotator.faces.embedding import DEFAULT_PERSON_THRESHOLD

        person_threshold = DEFAULT_PERSON_THRESHOLD if person_threshold is None else person_threshold
        people = _person_links(rows, person_threshold, echo)
        for members in people:
            union.link(sorted({rows[i].sha256 for i in members}))
        person_groups, person_faces = len(people), sum(len(members) for members in people)
    return SplitGroups({sha: union.find(sha) for sha in shas}, threshold, len(near), sum(len(m) for m in near),
                       sum(1 for sha in shas if hashes.get(sha) is None), group_by,
                       person_threshold if group_by == "person" else None, person_groups, person_faces)


def _person_links(rows: Sequence[FaceRow], threshold: float, echo: Echo | None) -> list[list[int]]:
    from annotator.exports.aligned_faces import aligned_faces
    from annotator.faces.embedding import (
        SECONDS_PER_FACE,
        face_descriptors,
        load_descriptor_models,
        person_groups,
    )

    load_descriptor_models()  # a missing extra fails before any face is decoded
    if echo is not None:
        echo(f"Describing {len(rows)} faces to group them by person (about {len(rows) * SECONDS_PER_FACE / 60:.0f} "
             "min on 2 CPU cores)...")

    def progress(done: int) -> None:
        if echo is not None and (done % 500 == 0 or done == len(rows)):
            echo(f"  faces described: {done}/{len(rows)}")

    descriptors = face_descriptors(aligned_faces(rows), on_face=progress)
    groups = person_groups(descriptors, threshold)
    return [members for members in _linked(range(len(rows)), groups)
            if len({rows[i].sha256 for i in members}) > 1]
