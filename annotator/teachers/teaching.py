"""`annotate teach FOLDER`: the teachers label every face of a folder; their values are stored as their own source.

Faces are found as ``submit`` finds them (the same face modes) and recorded in the same ``faces`` rows, so a face
found by ``teach`` is the face a later ``submit`` annotates and vice versa: each image's faces are found once.
Teacher values go to ``teacher_values`` under the teacher's name, never to ``labels`` (people) or ``predictions``
(the chain). Faces that already have a value of every teacher are not taught again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from annotator.errors import SourceError
from annotator.faces.detection import Detection, detect_faces
from annotator.faces.extraction import ExtractedFace
from annotator.faces.modes import FaceMode, FaceOptions
from annotator.images.decoding import DecodeError, ReasonCode, decode_face, decode_photo
from annotator.images.discovery import FoundImage, discover
from annotator.jobs.inputs import checked_folder
from annotator.jobs.pipeline import record_faces, recorded_detections
from annotator.teachers.models import REQUIRED_TEACHERS, VIEW_SIZE, TaughtValue, load_teachers
from annotator.teachers.views import FaceView, aligned_view, detected_view
from db.models import Face, Image, TeacherValue
from db.queries import QUERY_BATCH, batched, insert_ignoring_conflicts
from db.session import transaction

TEACH_BATCH = 64
"""Images taught between two commits: a crash loses at most this much work."""
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TaughtImage:
    """An image of the folder with its recorded face ids (in index order)."""

    image_id: int
    path: Path
    sha256: str
    face_ids: tuple[int, ...] = ()


@dataclass
class TeachResult:
    """What `teach` did with a folder."""

    images: list[TaughtImage] = field(default_factory=list)  # every image with faces, taught now or before
    taught: int = 0  # images taught by this run
    reused: int = 0  # images whose faces all had every teacher's value already
    faces: int = 0  # faces with teacher values, in all
    values: int = 0  # teacher values stored by this run
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason code, detail)


def record_images(session: Session, found: Sequence[FoundImage]) -> dict[str, int]:
    """Image ids by sha256, inserting the images not recorded yet."""
    by_sha = {item.sha256: item for item in found}
    insert_ignoring_conflicts(session, Image, [{"sha256": f.sha256, "path": str(f.path), "size": f.size,
                                                "format": f.format} for f in by_sha.values()])
    ids: dict[str, int] = {}
    for group in batched(list(by_sha), QUERY_BATCH):
        ids.update((sha, image_id) for sha, image_id in session.execute(
            select(Image.sha256, Image.id).where(Image.sha256.in_(group))))
    return ids


def taught_images(session: Session, image_ids: Sequence[int], method: str) -> dict[int, tuple[int, ...]]:
    """Face ids by image of the images whose every face (found by ``method``) has each required teacher's value."""
    done: dict[int, tuple[int, ...]] = {}
    for group in batched(list(image_ids), QUERY_BATCH):
        faces = session.execute(select(Face.image_id, Face.id).where(Face.image_id.in_(group), Face.method == method)
                                .order_by(Face.image_id, Face.index))
        by_image: dict[int, list[int]] = {}
        for image_id, face_id in faces:
            by_image.setdefault(image_id, []).append(face_id)
        complete = set(session.scalars(
            select(TeacherValue.face_id).join(Face, Face.id == TeacherValue.face_id)
            .where(Face.image_id.in_(group), Face.method == method, TeacherValue.teacher.in_(REQUIRED_TEACHERS))
            .group_by(TeacherValue.face_id)
            .having(func.count(func.distinct(TeacherValue.teacher)) == len(REQUIRED_TEACHERS))))
        done.update((image_id, tuple(ids)) for image_id, ids in by_image.items() if set(ids) <= complete)
    return done


def face_views(path: Path, sha256: str, options: FaceOptions, known: Sequence[Detection], *,
               max_pixels: int) -> list[tuple[ExtractedFace, FaceView]]:
    """The faces of one image as ``submit`` finds them, each with its teacher view (raises DecodeError)."""
    if options.mode is FaceMode.ALIGNED:
        face = decode_face(path, size=VIEW_SIZE, max_pixels=max_pixels, expected_sha256=sha256)
        view = aligned_view(face)
        return [(ExtractedFace(0, None, face), view)]
    photo = decode_photo(path, max_pixels=max_pixels, expected_sha256=sha256)
    detections = list(known) or detect_faces(photo, options)
    views = []
    for index, found in enumerate(detections):
        view = detected_view(photo, found.landmarks)
        views.append((ExtractedFace(index, found, view.pixels), view))
    return views


def _failure(path: Path, options: FaceOptions, views: list[tuple[ExtractedFace, FaceView]] | None,
             error: DecodeError | None) -> tuple[str, str, str] | None:
    if error is not None:
        return (str(path), error.failure.reason.value, error.failure.detail)
    if not views:
        detail = f"no face of at least {options.min_face_size} pixels with a detector score of {options.min_score:.2f}"
        return (str(path), ReasonCode.NO_FACE.value, detail)
    return None


def _teach_batch(factory: sessionmaker[Session], found: Sequence[FoundImage], options: FaceOptions,
                 max_pixels: int, result: TeachResult, seen: set[int]) -> None:
    with transaction(factory) as session:
        ids = record_images(session, found)
        done = taught_images(session, list(ids.values()), options.method)
        known = ({} if options.mode is FaceMode.ALIGNED
                 else recorded_detections(session, list(ids.values()), options.method))
    todo: list[tuple[FoundImage, int, list[ExtractedFace], list[list[TaughtValue]]]] = []
    for item in found:
        image_id = ids[item.sha256]
        if image_id in seen:  # the same bytes twice in the folder: one image, taught and trained on once
            continue
        seen.add(image_id)
        if image_id in done:
            result.images.append(TaughtImage(image_id, item.path, item.sha256, done[image_id]))
            result.reused += 1
            continue
        views, error = None, None
        try:
            views = face_views(item.path, item.sha256, options, known.get(image_id, ()), max_pixels=max_pixels)
        except DecodeError as caught:
            error = caught
        failure = _failure(item.path, options, views, error)
        if failure is not None or not views:
            result.failed.append(failure)  # type: ignore[arg-type]
            continue
        teachers = load_teachers()  # only once there is a face to teach: a folder already taught needs none
        todo.append((item, image_id, [face for face, _ in views],
                     [teachers.label(view.pixels, view.valid) for _, view in views]))
    if not todo:
        return
    rows: list[dict[str, Any]] = []
    with transaction(factory) as session:
        face_ids = iter(record_faces(session, options.method,
                                     [(image_id, face) for _, image_id, faces, _ in todo for face in faces]))
        for item, image_id, faces, values in todo:
            mine = tuple(next(face_ids) for _ in faces)
            rows += [{"face_id": face_id, "attribute": value.attribute, "value": value.value,
                      "teacher": value.teacher, "extra": value.extra}
                     for face_id, face_values in zip(mine, values) for value in face_values]
            result.images.append(TaughtImage(image_id, item.path, item.sha256, mine))
        insert_ignoring_conflicts(session, TeacherValue, rows)
    result.taught += len(todo)
    result.values += len(rows)


def teach_folder(factory: sessionmaker[Session], source: Path, options: FaceOptions, *, max_pixels: int,
                 progress: Progress | None = None) -> TeachResult:
    """Teacher values for every face of every image under ``source``; faces already taught are reused."""
    folder = checked_folder(source)
    found, failures = discover(folder)
    if not found and not failures:
        raise SourceError(f"No images found in {folder} (looked in every sub-folder, by content).")
    result = TeachResult(failed=[(str(path), failure.reason.value, failure.detail) for path, failure in failures])
    seen: set[int] = set()
    for start in range(0, len(found), TEACH_BATCH):
        _teach_batch(factory, found[start:start + TEACH_BATCH], options, max_pixels, result, seen)
        if progress is not None:
            progress(min(start + TEACH_BATCH, len(found)), len(found))
    result.faces = sum(len(image.face_ids) for image in result.images)
    return result
