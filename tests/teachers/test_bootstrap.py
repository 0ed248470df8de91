"""`annotate models bootstrap`: the chain trained on stored teacher values, registered as bootstrapped."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

pytest.importorskip("dlib", reason="the teachers need pip install 'annotate[teachers]'")

from annotator.cli import main
from annotator.faces.modes import ALIGNED_FACES
from annotator.images.discovery import hash_file
from annotator.images.portraits import generate_portraits, write_portrait_folder
from annotator.teachers.models import TEACHERS
from annotator.teachers.teaching import record_images
from db.models import Face, Label, ModelVersion, TeacherValue
from db.session import transaction

PORTRAITS = 120


def store_teacher_values(factory, folder: Path, seed: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Record the portraits' faces with their true values as teacher values (as `teach` would store them), so the
    test is about bootstrap, not about how well dlib reads cartoons; returns face ids by file name."""
    from annotator.images.discovery import FoundImage

    truth = generate_portraits(PORTRAITS, seed)
    paths = sorted(folder.iterdir())
    found = [FoundImage(path, *hash_file(path)) for path in paths]
    faces = {}
    with transaction(factory) as session:
        ids = record_images(session, found)
        for index, (path, item) in enumerate(zip(paths, found)):
            face = Face(image_id=ids[item.sha256], method=ALIGNED_FACES.method, index=0)
            session.add(face)
            session.flush()
            faces[path.name] = face.id
            for attribute in TEACHERS:
                value = float(truth.gender[index]) if attribute == "gender" else float(truth.labels(attribute)[index])
                session.add(TeacherValue(face_id=face.id, attribute=attribute, value=value,
                                         teacher=TEACHERS[attribute]))
    return faces


def test_gender_learns_every_face_with_the_teachers_probability_and_a_label_wins() -> None:
    from annotator.models.specs import GENDER, MOUTH
    from annotator.teachers.bootstrap import TeacherSet, model_rows
    from annotator.teachers.values import Target

    teacher = "teacher:" + TEACHERS["gender"]
    targets = [{"gender": Target(0.55, teacher), "mouth": Target(0.3, teacher)},  # a doubtful face counts too
               {"gender": Target(1.0, "label:alice")},
               {"mouth": Target(0.7, teacher)}]  # no gender: a regressor cannot be given its gender input
    data = TeacherSet(np.zeros((3, 120, 120, 3), np.float32), targets, np.array(["a", "b", "c"]))
    rows, labels, genders = model_rows(GENDER, data)
    assert rows.tolist() == [0, 1] and labels.tolist() == pytest.approx([0.55, 1.0]) and genders is None
    rows, labels, genders = model_rows(MOUTH, data)
    assert rows.tolist() == [0] and labels.tolist() == pytest.approx([0.3]) and genders.tolist() == [1]


def test_each_model_trains_its_own_most_epochs_unless_the_option_says_otherwise() -> None:
    from annotator.models.specs import BACKGROUND_MEAN, GENDER, MOUTH
    from annotator.teachers.bootstrap import BootstrapOptions, epochs_for

    assert epochs_for(GENDER, BootstrapOptions()) == 40  # the seed recipe's
    assert epochs_for(BACKGROUND_MEAN, BootstrapOptions()) == 16
    assert epochs_for(MOUTH, BootstrapOptions()) == 80
    assert {epochs_for(spec, BootstrapOptions(epochs=2)) for spec in (GENDER, BACKGROUND_MEAN, MOUTH)} == {2}


def test_the_mouth_departure_is_patience_only() -> None:
    from annotator.models.specs import MOUTH
    from annotator.teachers.bootstrap import DEPARTURES

    patient = DEPARTURES["mouth"].applied_to(MOUTH)
    assert (patient.lr_patience, patient.stop_patience) == (6, 12)
    assert patient.conv_layers == MOUTH.conv_layers and patient.dense_units == MOUTH.dense_units
    assert DEPARTURES["gender"].applied_to(MOUTH) == MOUTH  # no patience given: the spec's own


@pytest.mark.slow
def test_bootstrap_trains_registers_and_activates_the_chain(settings, factory, tmp_path) -> None:
    folder = tmp_path / "unlabelled"
    write_portrait_folder(folder, PORTRAITS, seed=3, fmt="png")
    faces = store_teacher_values(factory, folder, seed=3)
    first = min(faces)
    with transaction(factory) as session:  # a person's label wins over the teacher's
        session.add(Label(face_id=faces[first], attribute="mouth", value=1.0, source="alice"))

    result = CliRunner().invoke(main, ["models", "bootstrap", str(folder), "--faces", "aligned", "--activate",
                                       "--epochs", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{PORTRAITS} images with {PORTRAITS} faces have teacher values (0 taught now, {PORTRAITS} already" \
        in result.output
    for name in TEACHERS:
        assert f"{name} seed report, on teacher values" in result.output
    assert "mouth: training on 120 faces (dlib68-mar-v2 values, 1 people's labels winning)" in result.output
    with factory() as session:
        versions = {v.name: v for v in session.scalars(select(ModelVersion))}
    assert sorted(versions) == sorted(TEACHERS)
    for name, version in versions.items():
        assert not version.is_demo
        assert version.metrics["bootstrapped"]["teacher"] == f"teacher:{TEACHERS[name]}"
        assert version.metrics["bootstrapped"]["rows_used"] == PORTRAITS
        assert version.active == (not version.metrics["collapsed"])
        assert f"Registered {name}@1 (bootstrapped from teachers)" in result.output
    assert versions["mouth"].metrics["bootstrapped"]["sources"] == ["label:alice", f"teacher:{TEACHERS['mouth']}"]
    listing = CliRunner().invoke(main, ["models", "list"], catch_exceptions=False)
    assert listing.output.count("BOOTSTRAPPED") == 4


@pytest.mark.slow
def test_submit_after_bootstrap_gives_values_traceable_to_versions(settings, factory, tmp_path) -> None:
    folder = tmp_path / "unlabelled"
    write_portrait_folder(folder, PORTRAITS, seed=4, fmt="png")
    store_teacher_values(factory, folder, seed=4)
    runner = CliRunner()
    assert runner.invoke(main, ["models", "bootstrap", str(folder), "--faces", "aligned", "--activate", "--epochs",
                                "2"], catch_exceptions=False).exit_code == 0
    with transaction(factory) as session:  # whatever collapsed in two epochs is activated anyway for this check
        for version in session.scalars(select(ModelVersion)):
            version.active = True
    other = tmp_path / "other"
    write_portrait_folder(other, 5, seed=99, fmt="png")
    submitted = runner.invoke(main, ["submit", str(other), "--faces", "aligned", "--wait"], catch_exceptions=False)
    assert submitted.exit_code == 0, submitted.output
    exported = runner.invoke(main, ["export"], catch_exceptions=False)
    rows = [r for r in csv.DictReader(io.StringIO(exported.stdout)) if "/other/" in r["path"]]
    assert len(rows) == 5
    for row in rows:
        assert [row[f"{name}_version"] for name in TEACHERS] == [f"{name}@1" for name in TEACHERS]
        assert np.isclose(float(row["male_prob"]) + float(row["female_prob"]), 1.0, atol=1e-5)
