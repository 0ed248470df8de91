"""Find the recorded face a labels row means: by sha256 (or a unique prefix) or a known path, index and method."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, union
from sqlalchemy.orm import Session

from annotator.errors import LabelRowError
from annotator.images.discovery import hash_location
from annotator.images.sources import is_file, is_uri, normalised
from db.models import Face, Image, JobImage

_SHA_PREFIX = re.compile(r"[0-9a-f]{6,64}")
# A sha256 prefix p is the range [p, p + "g"): "g" sorts after every hex digit, and a range uses the index.
_AFTER_HEX = "g"


@dataclass(frozen=True)
class FaceKey:
    """How a labels row names a face; ``method`` None means the image's only face method."""

    sha256: str | None = None
    path: str | None = None
    face_index: int = 0
    method: str | None = None


class FaceLookup:
    """Resolves :class:`FaceKey` to face ids (relative paths against ``base``), caching per image."""

    def __init__(self, session: Session, base: Path) -> None:
        self.session = session
        self.base = base
        self._faces: dict[int, list[tuple[int, str, int]]] = {}

    def face_id(self, key: FaceKey) -> int:
        """The id of the face ``key`` names, or :class:`LabelRowError` saying why there is none."""
        image_id = self._by_sha256(key.sha256) if key.sha256 else self._by_path(key.path or "")
        faces = self._faces_of(image_id)
        methods = sorted({method for _, method, _ in faces})
        if not faces:
            raise LabelRowError("the image has no recorded faces (no face was found, or it was never annotated)")
        method = key.method
        if method is None:
            if len(methods) > 1:
                raise LabelRowError(f"the image has faces found by several methods ({', '.join(methods)}); "
                                    "add a method column to say which")
            method = methods[0]
        for face_id, face_method, index in faces:
            if face_method == method and index == key.face_index:
                return face_id
        indexes = [index for _, face_method, index in faces if face_method == method]
        if not indexes:
            raise LabelRowError(f"the image has no faces found by method {method!r} (it has: {', '.join(methods)})")
        raise LabelRowError(f"the image has no face {key.face_index} by {method} (it has faces 0 to {max(indexes)})")

    def _by_sha256(self, prefix: str) -> int:
        prefix = prefix.strip().lower()
        if not _SHA_PREFIX.fullmatch(prefix):
            raise LabelRowError(f"sha256 must be 6 to 64 hexadecimal characters. Received: {prefix!r}")
        found = self.session.scalars(select(Image.id).where(Image.sha256 >= prefix, Image.sha256 < prefix + _AFTER_HEX)
                                     .limit(2)).all()
        if not found:
            raise LabelRowError(f"no annotated image has a sha256 starting with {prefix}")
        if len(found) > 1:
            raise LabelRowError(f"several images have a sha256 starting with {prefix}; give more characters")
        return found[0]

    def _by_path(self, text: str) -> int:
        if not text.strip():
            raise LabelRowError("neither sha256 nor path is given")
        path: Path | str
        if is_uri(text.strip()):
            path = normalised(text.strip())
            candidates = [path]
        else:
            path = Path(text.strip()).expanduser()
            if not path.is_absolute():
                path = self.base / path
            # Paths are recorded as submitted (resolved); a labels file may spell them through a symlink.
            candidates = list(dict.fromkeys([str(path), str(path.resolve())]))
        seen_at = union(select(Image.id).where(Image.path.in_(candidates)),
                        select(JobImage.image_id).where(JobImage.path.in_(candidates), JobImage.image_id.is_not(None)))
        ids = set(self.session.scalars(seen_at))
        if len(ids) == 1:
            return ids.pop()
        if not ids:
            raise LabelRowError(f"no image was annotated at {path}")
        return self._by_current_content(path, ids)

    def _by_current_content(self, path: Path | str, ids: set[int]) -> int:
        """The one of several images seen at ``path`` (or URI) whose bytes the file holds now."""
        if is_file(str(path)):
            sha256 = hash_location(path)[0]
            image_id = self.session.scalar(select(Image.id).where(Image.sha256 == sha256, Image.id.in_(ids)))
            if image_id is not None:
                return image_id
        raise LabelRowError(f"{path} held several different images over time; give the sha256 instead")

    def _faces_of(self, image_id: int) -> list[tuple[int, str, int]]:
        if image_id not in self._faces:
            rows = self.session.execute(select(Face.id, Face.method, Face.index).where(Face.image_id == image_id))
            self._faces[image_id] = [tuple(row) for row in rows]  # type: ignore[misc]
        return self._faces[image_id]
