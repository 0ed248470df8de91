"""Read stored teacher values back: what bootstrap trains on, what exports and reviews compare against."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.teachers.models import SOURCE_PREFIX, TEACHERS
from db.models import Label, TeacherValue
from db.queries import QUERY_BATCH, batched

LABEL_PREFIX = "label:"


@dataclass(frozen=True)
class Target:
    """One attribute's value for a face and where it came from: ``teacher:NAME`` or ``label:SOURCE``."""

    value: float  # gender: the female probability (a label: 0 male, 1 female)
    source: str

    @property
    def is_label(self) -> bool:
        """True for a person's label, which always wins over a teacher."""
        return self.source.startswith(LABEL_PREFIX)


def teacher_values(session: Session, face_ids: Iterable[int] | None = None) -> dict[int, dict[str, Target]]:
    """Teacher values by face and attribute (all faces, or ``face_ids``); the current teacher's wins, else the
    newest."""
    def rank(teacher: str, attribute: str) -> int:
        return 1 if TEACHERS.get(attribute) == teacher else 0

    query = select(TeacherValue.face_id, TeacherValue.attribute, TeacherValue.value, TeacherValue.teacher) \
        .order_by(TeacherValue.created_at, TeacherValue.id)
    groups = [None] if face_ids is None else list(batched(list(face_ids), QUERY_BATCH))
    found: dict[int, dict[str, tuple[int, Target]]] = {}
    for group in groups:
        rows = session.execute(query if group is None else query.where(TeacherValue.face_id.in_(group)))
        for face_id, attribute, value, teacher in rows:
            held = found.setdefault(face_id, {})
            ranked = rank(teacher, attribute)
            if attribute not in held or ranked >= held[attribute][0]:
                held[attribute] = (ranked, Target(value, SOURCE_PREFIX + teacher))
    return {face_id: {name: target for name, (_, target) in held.items()} for face_id, held in found.items()}


def labels_of(session: Session, face_ids: Iterable[int] | None = None) -> dict[int, dict[str, Target]]:
    """The newest label of each face's attributes (the one that wins), by face and attribute."""
    query = select(Label.face_id, Label.attribute, Label.value, Label.source).order_by(Label.created_at, Label.id)
    groups = [None] if face_ids is None else list(batched(list(face_ids), QUERY_BATCH))
    found: dict[int, dict[str, Target]] = {}
    for group in groups:
        for face_id, attribute, value, source in session.execute(
                query if group is None else query.where(Label.face_id.in_(group))):
            found.setdefault(face_id, {})[attribute] = Target(value, LABEL_PREFIX + source)
    return found


def training_targets(session: Session, face_ids: Iterable[int]) -> dict[int, dict[str, Target]]:
    """What bootstrap learns for each face: the teachers' values, with people's labels winning."""
    ids = list(face_ids)
    targets = teacher_values(session, ids)
    for face_id, labels in labels_of(session, ids).items():
        targets.setdefault(face_id, {}).update(labels)
    return targets
