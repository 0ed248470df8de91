"""`annotate teach`: real teachers on a real photo; values stored as their own source, faces shared with submit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

pytest.importorskip("dlib", reason="the teachers need pip install 'annotate[teachers]'")

from annotator.exports.options import ExportOptions
from annotator.exports.run import run_export
from annotator.faces.detection import detect_faces
from annotator.faces.modes import DETECTED_FACES
from annotator.teachers.models import (
    BACKGROUND_TEACHER,
    BOX_JITTERS,
    EYES_TEACHER,
    GENDER_TEACHER,
    MOUTH_TEACHER,
    load_teachers,
)
from annotator.teachers.teaching import teach_folder
from annotator.teachers.views import detected_view
from db.models import Face, Label, Prediction, TeacherValue
from db.session import transaction
from tests.photos import astronaut, landscape


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """The astronaut (one woman, eyes open, smiling), a landscape with nobody in it, and a file that is no image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    astronaut().save(folder / "astronaut.jpg", quality=95)
    landscape().save(folder / "landscape.jpg", quality=95)
    (folder / "broken.jpg").write_bytes(b"not a picture")
    return folder


def values_of(factory) -> dict[str, tuple[float, str]]:  # type: ignore[no-untyped-def]
    with factory() as session:
        rows = session.execute(select(TeacherValue.attribute, TeacherValue.value, TeacherValue.teacher)).all()
    return {attribute: (value, teacher) for attribute, value, teacher in rows}


def test_teach_stores_each_teacher_value_under_its_name(settings, factory, photos) -> None:
    result = teach_folder(factory, photos, DETECTED_FACES, max_pixels=settings.max_image_pixels)
    assert (len(result.images), result.faces, result.taught, result.reused) == (1, 1, 1, 0)
    assert sorted((Path(path).name, reason) for path, reason, _ in result.failed) == [
        ("broken.jpg", "not_an_image"), ("landscape.jpg", "no_face")]
    values = values_of(factory)
    assert {name: teacher for name, (_, teacher) in values.items()} == {
        "gender": GENDER_TEACHER, "eyes": EYES_TEACHER, "mouth": MOUTH_TEACHER, "background_mean": BACKGROUND_TEACHER}
    assert result.values == 4
    assert values["gender"][0] > 0.9  # the female probability: she is a woman
    assert values["eyes"][0] > 0.9  # both eyes plainly open
    assert all(0.0 <= value <= 1.0 for value, _ in values.values())
    with factory() as session:  # never labels, never predictions
        assert session.scalar(select(func.count()).select_from(Label)) == 0
        assert session.scalar(select(func.count()).select_from(Prediction)) == 0


def test_teaching_again_reuses_the_stored_values(settings, factory, photos) -> None:
    teach_folder(factory, photos, DETECTED_FACES, max_pixels=settings.max_image_pixels)
    again = teach_folder(factory, photos, DETECTED_FACES, max_pixels=settings.max_image_pixels)
    assert (again.taught, again.reused, again.values, again.faces) == (0, 1, 0, 1)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(TeacherValue)) == 4


def test_values_of_an_earlier_teacher_version_are_kept_and_taught_again(settings, factory, photos) -> None:
    from sqlalchemy import update

    from annotator.teachers.values import teacher_values

    teach_folder(factory, photos, DETECTED_FACES, max_pixels=settings.max_image_pixels)
    with transaction(factory) as session:  # as a home taught before the mouth teacher's current version
        session.execute(update(TeacherValue).where(TeacherValue.teacher == MOUTH_TEACHER)
                        .values(teacher="dlib68-mar-v1", value=0.99))
    again = teach_folder(factory, photos, DETECTED_FACES, max_pixels=settings.max_image_pixels)
    assert (again.taught, again.reused) == (1, 0)
    with factory() as session:
        teachers = sorted(session.scalars(select(TeacherValue.teacher).where(TeacherValue.attribute == "mouth")))
        ((_, values),) = teacher_values(session).items()
    assert teachers == ["dlib68-mar-v1", MOUTH_TEACHER]
    assert values["mouth"].source == f"teacher:{MOUTH_TEACHER}" and values["mouth"].value != 0.99


def test_submit_annotates_the_faces_teach_found(settings, factory, photos, untrained_chain) -> None:
    from annotator.jobs.orchestration import submit_source

    teach_folder(factory, photos, DETECTED_FACES, max_pixels=settings.max_image_pixels)
    with factory() as session:
        (taught_face,) = session.scalars(select(Face.id)).all()
    submit_source(settings, factory, photos, chunk_size=8, faces=DETECTED_FACES, queue="default")
    with factory() as session:
        assert session.scalars(select(Face.id)).all() == [taught_face]  # found once, by teach
        assert set(session.scalars(select(Prediction.face_id))) == {taught_face}


def test_export_teachers_source_names_the_teacher_and_lets_labels_win(settings, factory, photos) -> None:
    import csv
    import io

    teach_folder(factory, photos, DETECTED_FACES, max_pixels=settings.max_image_pixels)
    with transaction(factory) as session:  # a person says the eyes are half closed
        face_id = session.scalar(select(Face.id))
        session.add(Label(face_id=face_id, attribute="eyes", value=0.5, source="alice"))
    out = io.StringIO()
    run_export_result = run_export(factory(), ExportOptions(source="teachers"), None, out)
    assert run_export_result.rows == 1
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert row["gender_version"] == f"teacher:{GENDER_TEACHER}" and float(row["female_prob"]) > 0.9
    assert row["mouth_version"] == f"teacher:{MOUTH_TEACHER}"
    assert (row["eyes"], row["eyes_version"]) == ("0.5", "label:alice")


def test_teach_cli_prints_counts_and_failures(settings, photos) -> None:
    from click.testing import CliRunner

    from annotator.cli import main

    result = CliRunner().invoke(main, ["teach", str(photos)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1 images with 1 faces have teacher values: 1 taught now (4 values stored)" in result.output
    assert "no_face" in result.output and "landscape.jpg" in result.output
    missing = CliRunner().invoke(main, ["teach", str(photos / "nowhere")])
    assert missing.exit_code == 1 and "Folder not found" in missing.output


def test_the_same_photo_twice_is_one_image(settings, factory, photos, monkeypatch) -> None:
    import shutil

    from annotator.teachers import teaching

    shutil.copyfile(photos / "astronaut.jpg", photos / "zz-copy.jpg")
    monkeypatch.setattr(teaching, "TEACH_BATCH", 1)  # the copy lands in another batch than the original
    result = teach_folder(factory, photos, DETECTED_FACES, max_pixels=settings.max_image_pixels)
    assert (len(result.images), result.faces, result.taught, result.reused) == (1, 1, 1, 0)


def test_the_landmark_fits_of_a_face_and_of_its_mirror_image_agree() -> None:
    photo = astronaut()
    (face,) = detect_faces(photo, DETECTED_FACES)
    view = detected_view(photo, face.landmarks)
    fits = load_teachers().point_fits(view.pixels)
    assert fits.shape == (2 * len(BOX_JITTERS), 68, 2)
    centre = np.median(fits, axis=0)
    # Each fit lands every point within a few pixels of the fits' median: the mirrored ones too, so they came back
    # in the view's coordinates and point order (read in the mirror's order, the eye corners sit ~70 pixels off).
    assert np.abs(fits - centre).max() < 6.0


def test_the_gender_teacher_reads_a_face_and_its_mirror_image_alike() -> None:
    photo = astronaut()
    (face,) = detect_faces(photo, DETECTED_FACES)
    view = detected_view(photo, face.landmarks).pixels
    teachers = load_teachers()
    female = teachers.female_probability(view)
    assert female > 0.9
    # Its chip is symmetric about the view's middle and averaged with its mirror image: a mirrored face reads alike.
    assert teachers.female_probability(np.ascontiguousarray(view[:, ::-1])) == pytest.approx(female, abs=1e-6)
