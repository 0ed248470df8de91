"""Review where it matters: Label Studio tasks ordered by how far the chain and the teachers disagree."""

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from annotator.cli import main
from annotator.labels.exporting import label_studio_tasks
from annotator.labels.uncertainty import disagreement
from annotator.teachers.models import TEACHERS
from db.models import Face, Image, TeacherValue
from db.session import transaction
from tests.conftest import fake_chain, record_annotations, write_faces

CHAIN = {"gender": 0.1, "eyes": 0.9, "mouth": 0.9, "background_mean": 0.9}


def test_disagreement_is_the_largest_gap_over_shared_attributes() -> None:
    assert disagreement({"gender": 0.1, "eyes": 0.9}, {"gender": 0.2, "eyes": 0.3}) == pytest.approx(0.6)
    assert disagreement({"eyes": 0.9}, {"mouth": 0.0}) == 0.0  # nothing in common: nothing to dispute
    assert disagreement({"mouth": 0.5}, {}) == 0.0


def add_teacher_values(factory, values_by_file: dict[str, dict[str, float]]) -> None:  # type: ignore[no-untyped-def]
    with transaction(factory) as session:
        faces = dict(session.execute(select(Image.path, Face.id).join(Face, Face.image_id == Image.id)).all())
        for path, face_id in faces.items():
            for attribute, value in values_by_file.get(path.rsplit("/", 1)[-1], {}).items():
                session.add(TeacherValue(face_id=face_id, attribute=attribute, value=value,
                                         teacher=TEACHERS[attribute]))


def test_tasks_come_most_disputed_first(factory, tmp_path) -> None:
    fake_chain(factory)
    paths = write_faces(tmp_path / "photos", 4)
    # The chain is equally sure of all four faces; only the teachers tell them apart.
    record_annotations(factory, paths, [CHAIN] * 4)
    add_teacher_values(factory, {
        "face_000.png": dict(CHAIN),  # the teachers agree
        "face_001.png": {**CHAIN, "mouth": 0.3},  # mouth disputed by 0.6
        "face_002.png": {**CHAIN, "gender": 0.95},  # the teacher says female: disputed by 0.85
        # face_003.png: never taught, nothing to dispute
    })
    with factory() as session:
        by_doubt = [t["data"]["path"].rsplit("/", 1)[-1] for t in label_studio_tasks(session)]
        tasks = label_studio_tasks(session, order="disagreement")
        with pytest.raises(ValueError, match="Unknown order"):
            label_studio_tasks(session, order="loudest")
    assert [t["data"]["path"].rsplit("/", 1)[-1] for t in tasks] == [
        "face_002.png", "face_001.png", "face_000.png", "face_003.png"]
    assert by_doubt != [t["data"]["path"].rsplit("/", 1)[-1] for t in tasks]
    assert [t["data"]["disagreement"] for t in tasks] == [0.85, 0.6, 0.0, 0.0]
    assert tasks[0]["data"]["teachers"]["gender"] == 0.95
    assert "teachers" not in label_studio_tasks(factory(), limit=1)[0]["data"]


def test_cli_orders_by_disagreement(settings, factory, tmp_path) -> None:
    fake_chain(factory)
    paths = write_faces(tmp_path / "photos", 2)
    record_annotations(factory, paths, [CHAIN] * 2)
    add_teacher_values(factory, {"face_001.png": {**CHAIN, "eyes": 0.0}})
    out = tmp_path / "tasks.json"
    result = CliRunner().invoke(main, ["labels", "export", "-o", str(out), "--order", "disagreement", "--limit", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    import json

    (task,) = json.loads(out.read_text())
    assert task["data"]["path"].endswith("face_001.png") and task["data"]["disagreement"] == 0.9
