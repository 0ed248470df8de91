"""`annotate export --source teachers`: the teachers' values, named teacher:NAME, people's labels winning."""

import csv
import io
import json

import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.errors import ExportError
from annotator.exports.options import ExportOptions
from annotator.exports.run import run_export
from annotator.teachers.models import TEACHERS
from db.models import Face, Image, Label, TeacherValue
from db.session import transaction


def taught_face(factory, name: str, values: dict[str, float]) -> int:  # type: ignore[no-untyped-def]
    with transaction(factory) as session:
        face = Face(image=Image(sha256=name * 64, path=f"/photos/{name}.jpg", size=1, format="JPEG"),
                    method="mtcnn-32-0.90", index=0, box=[1.0, 2.0, 30.0, 40.0])
        session.add(face)
        session.flush()
        for attribute, value in values.items():
            session.add(TeacherValue(face_id=face.id, attribute=attribute, value=value, teacher=TEACHERS[attribute]))
        return face.id


def test_teacher_values_export_without_any_model(settings, factory, tmp_path) -> None:
    taught_face(factory, "a", {"gender": 0.9, "eyes": 1.0, "mouth": 0.25})
    face = taught_face(factory, "b", {"gender": 0.2, "eyes": 0.5, "mouth": 0.0, "background_mean": 0.75})
    with transaction(factory) as session:  # a person corrects the teacher: labels always win
        session.add(Label(face_id=face, attribute="gender", value=1.0, source="alice"))
    output = tmp_path / "teachers.csv"
    result = CliRunner().invoke(main, ["export", "--source", "teachers", "-o", str(output)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    a, b = csv.DictReader(output.open())
    assert (a["female_prob"], a["gender_version"]) == ("0.9", f"teacher:{TEACHERS['gender']}")
    assert a["eyes_version"] == f"teacher:{TEACHERS['eyes']}" and a["background_mean"] == ""
    assert (b["female_prob"], b["male_prob"], b["gender_version"]) == ("1.0", "0.0", "label:alice")
    assert (b["background_mean"], b["background_mean_version"]) == ("0.75", f"teacher:{TEACHERS['background_mean']}")
    manifest = json.loads((tmp_path / "teachers.csv.manifest.json").read_text())
    assert manifest["model_versions"] == [] and manifest["label_sources"] == ["alice"]
    assert manifest["teachers"] == sorted(TEACHERS.values())


def test_the_other_sources_ignore_teacher_values(settings, factory) -> None:
    from tests.conftest import fake_chain

    fake_chain(factory)
    taught_face(factory, "a", {"gender": 0.9, "eyes": 1.0, "mouth": 0.25})
    with pytest.raises(ExportError, match="No annotated faces"):
        run_export(factory(), ExportOptions(), None, io.StringIO())


def test_no_teacher_values_says_how_to_get_them(settings, factory) -> None:
    with pytest.raises(ExportError, match="annotate teach FOLDER"):
        run_export(factory(), ExportOptions(source="teachers"), None, io.StringIO())
