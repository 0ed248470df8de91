"""The retraining loop end to end: export, label, a new model version, reannotate, export again."""

import csv
import io
import json

import numpy as np
from sqlalchemy import select

from annotator.exports.formats.csv import write_csv
from annotator.exports.query import face_rows
from annotator.faces.alignment import TEMPLATE
from annotator.jobs.pipeline import process_chunk
from annotator.jobs.reannotate import create_reannotation_jobs
from annotator.jobs.staleness import ChainVersions, stale_summary
from annotator.labels.exporting import label_studio_tasks
from annotator.labels.importing import import_labels
from annotator.models.specs import attribute_names
from annotator.models.store import active_chain_versions, active_version
from db.models import Face, Image, Job, JobImage, Label, Prediction
from db.session import transaction
from tests.conftest import register_version, write_faces
from tests.jobs.test_pipeline import run_job

ATTRIBUTE_COLUMNS = {"gender": ["male_prob", "female_prob"], "eyes": ["eyes"], "mouth": ["mouth"],
                     "background_mean": ["background_mean"]}


def exported(factory):
    """The csv export as {(file name, face index): row}."""
    out = io.StringIO()
    with factory() as session:
        write_csv(face_rows(session), out, attribute_names())
    return {(row["path"].rsplit("/", 1)[-1], row["face_index"]): row for row in csv.DictReader(io.StringIO(out.getvalue()))}


def prediction_rows(factory):
    with factory() as session:
        return set(session.execute(select(Prediction.id, Prediction.face_id, Prediction.attribute, Prediction.value,
                                          Prediction.model_version_id, Prediction.gender_version_id)).all())


def reannotate(factory, settings, job_id=None):
    with transaction(factory) as session:
        jobs = create_reannotation_jobs(session, chunk_size=2, job_id=job_id)
    for job in jobs:
        for chunk in job.chunks:
            process_chunk(factory, settings, job.job_id, chunk)
    return jobs


def version_id(factory, name):
    with factory() as session:
        return active_version(session, name).id


def changed_columns(before, after):
    """{(file, face): [columns whose value changed]}, for rows whose values changed."""
    assert before.keys() == after.keys()
    found = {key: sorted(c for c in before[key] if before[key][c] != after[key][c]) for key in before}
    return {key: columns for key, columns in found.items() if columns}


def test_round_trip_changes_exactly_the_rows_it_should(factory, settings, untrained_chain, tmp_path):
    write_faces(tmp_path / "photos", 5)
    run_job(factory, settings, tmp_path / "photos")
    before = exported(factory)

    # A person labels two faces in Label Studio: face_000's eyes are closed, face_001 is female.
    with factory() as session:
        tasks = {t["data"]["path"].rsplit("/", 1)[-1]: t for t in label_studio_tasks(session)}
    choose = {"face_000.png": ("eyes", "0"), "face_001.png": ("gender", "female")}
    labelled_tasks = [{**tasks[name], "annotations": [{"result": [
        {"from_name": attribute, "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]}]}
        for name, (attribute, choice) in choose.items()]
    (tmp_path / "alice.json").write_text(json.dumps(labelled_tasks))
    with transaction(factory) as session:
        assert import_labels(session, tmp_path / "alice.json").summary() == \
            "imported 2 labels for 2 faces, skipped 0 rows"
    labelled = exported(factory)
    assert changed_columns(before, labelled) == {
        ("face_000.png", "0"): ["eyes", "eyes_version"],
        ("face_001.png", "0"): ["female_prob", "gender_version", "male_prob"],
    }
    assert labelled[("face_000.png", "0")]["eyes"] == "0.0"
    assert labelled[("face_001.png", "0")]["eyes_version"] == "eyes@1"

    # A retrained eyes model: only eyes predictions are stale, and only they are written again.
    old_predictions = prediction_rows(factory)
    register_version(factory, settings, "eyes")
    jobs = reannotate(factory, settings)
    assert [job.total for job in jobs] == [5]
    new_predictions = prediction_rows(factory)
    assert old_predictions < new_predictions
    added = new_predictions - old_predictions
    assert {(attribute, model, gender) for _, _, attribute, _, model, gender in added} == \
        {("eyes", version_id(factory, "eyes"), version_id(factory, "gender"))}
    assert len(added) == 5
    after_eyes = exported(factory)
    unlabelled = [key for key in labelled if key != ("face_000.png", "0")]
    assert changed_columns(labelled, after_eyes) == {key: ["eyes", "eyes_version"] for key in unlabelled}
    assert {after_eyes[key]["eyes_version"] for key in unlabelled} == {"eyes@2"}
    assert after_eyes[("face_000.png", "0")]["eyes"] == "0.0"  # the label still wins
    assert reannotate(factory, settings) == []

    # A retrained gender model: every regressor consumed gender, so every prediction is new.
    register_version(factory, settings, "gender")
    assert [job.total for job in reannotate(factory, settings)] == [5]
    added = prediction_rows(factory) - new_predictions
    assert len(added) == 5 * 4
    assert {gender for *_, gender in added} == {version_id(factory, "gender")}
    after_gender = exported(factory)
    # Every value changes but the labelled ones; only gender_version names a new version (the regressor
    # versions are the same; their values were computed with the row's new gender version).
    every_value = {"male_prob", "female_prob", "gender_version", "eyes", "mouth", "background_mean"}
    expected = {key: sorted(every_value) for key in labelled}
    expected[("face_000.png", "0")] = sorted(every_value - {"eyes"})
    expected[("face_001.png", "0")] = sorted(every_value - {"male_prob", "female_prob", "gender_version"})
    assert changed_columns(after_eyes, after_gender) == expected
    assert {row["gender_version"] for key, row in after_gender.items() if key != ("face_001.png", "0")} == \
        {"gender@2"}
    with factory() as session:
        assert len(session.scalars(select(Label)).all()) == 2
        summary = stale_summary(session, ChainVersions.of(active_chain_versions(session)))
    assert (summary.faces, summary.outdated) == (5, 0)


def test_only_images_with_stale_faces_are_reannotated_and_gone_files_are_unreadable(factory, settings,
                                                                                    untrained_chain, tmp_path):
    old = write_faces(tmp_path / "old", 3)
    run_job(factory, settings, tmp_path / "old")
    register_version(factory, settings, "mouth")
    write_faces(tmp_path / "new", 2, seed=4)
    current_job = run_job(factory, settings, tmp_path / "new")
    assert reannotate(factory, settings, job_id=current_job.job_id) == []

    old[0].unlink()
    jobs = reannotate(factory, settings)
    assert [(job.total, job.failed) for job in jobs] == [(3, 1)]
    with factory() as session:
        members = dict(session.execute(select(JobImage.path, JobImage.reason)
                                       .where(JobImage.job_id == jobs[0].job_id)).all())
        assert members == {str(old[0]): "unreadable", str(old[1]): None, str(old[2]): None}
        assert session.get(Job, jobs[0].job_id).status == "finished"
        summary = stale_summary(session, ChainVersions.of(active_chain_versions(session)))
    assert (summary.outdated, summary.stale["mouth"]) == (1, 1)


def test_recorded_detected_faces_are_reused_not_detected_again(factory, settings, untrained_chain, tmp_path):
    """Random pixels hold no face MTCNN would find: predictions prove the recorded face was used."""
    path = write_faces(tmp_path / "photos", 1)[0]
    run_job(factory, settings, tmp_path / "photos")
    with transaction(factory) as session:
        image_id = session.scalar(select(Image.id))
        detected = Face(image_id=image_id, method="mtcnn-32-0.90", index=0, box=[30.0, 30.0, 90.0, 100.0],
                        landmarks=np.asarray(TEMPLATE).tolist(), score=0.99)
        session.add(detected)
        session.flush()
        face_id = detected.id
    jobs = reannotate(factory, settings)
    assert [job.total for job in jobs] == [1]
    with factory() as session:
        job = session.get(Job, jobs[0].job_id)
        assert (job.face_mode, job.face_options) == ("detect", {"detector": "mtcnn", "min_face_size": 32,
                                                                "min_score": 0.9})
        assert session.scalar(select(JobImage.status).where(JobImage.job_id == job.id)) == "done"
        assert len(session.scalars(select(Face.id)).all()) == 2
        attributes = session.scalars(select(Prediction.attribute).where(Prediction.face_id == face_id)).all()
    assert sorted(attributes) == ["background_mean", "eyes", "gender", "mouth"]
    assert path.exists()
