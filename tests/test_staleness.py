from sqlalchemy import delete, select

from annotator.staleness import ChainVersions, images_needing_predictions, stale_summary
from annotator.store import activate_version, active_chain_versions
from db.models import Face, Image, Prediction
from db.session import transaction
from tests.conftest import register_version, write_faces
from tests.test_pipeline import run_job


def summary(factory, job_id=None):
    with factory() as session:
        return stale_summary(session, ChainVersions.of(active_chain_versions(session)), job_id)


def needing(factory, job_id=None):
    with factory() as session:
        return images_needing_predictions(session, ChainVersions.of(active_chain_versions(session)), job_id)


def test_staleness_follows_the_active_versions(factory, settings, untrained_chain, tmp_path):
    write_faces(tmp_path / "old", 3)
    run_job(factory, settings, tmp_path / "old")
    assert summary(factory).outdated == 0 and summary(factory).faces == 3
    assert needing(factory) == {}

    register_version(factory, settings, "eyes")
    write_faces(tmp_path / "new", 2, seed=5)
    new_job = run_job(factory, settings, tmp_path / "new")  # annotated by eyes@2 from the start
    after_eyes = summary(factory)
    assert (after_eyes.faces, after_eyes.outdated) == (5, 3)
    assert after_eyes.stale == {"gender": 0, "eyes": 3, "mouth": 0, "background_mean": 0}
    with factory() as session:
        old_ids = set(session.scalars(select(Image.id).where(Image.path.contains("/old/"))))
    assert set(needing(factory)["aligned"]) == old_ids
    assert summary(factory, new_job.job_id).outdated == 0

    with transaction(factory) as session:  # back to eyes@1: derived, so the old rows are current again
        activate_version(session, "eyes", 1)
    assert set(needing(factory)["aligned"]) == {i for i in range(1, 6)} - old_ids

    register_version(factory, settings, "gender")  # regressors consumed gender: everything is stale
    after_gender = summary(factory)
    assert after_gender.outdated == 5
    assert after_gender.stale == {"gender": 5, "eyes": 5, "mouth": 5, "background_mean": 5}


def test_a_face_without_any_prediction_of_an_attribute_is_missing(factory, settings, untrained_chain, tmp_path):
    write_faces(tmp_path / "photos", 2)
    run_job(factory, settings, tmp_path / "photos")
    with transaction(factory) as session:
        face_id = session.scalar(select(Face.id).limit(1))
        session.execute(delete(Prediction).where(Prediction.face_id == face_id, Prediction.attribute == "mouth"))
    found = summary(factory)
    assert (found.outdated, found.missing["mouth"], found.stale["mouth"]) == (1, 1, 0)
    with factory() as session:
        image_id = session.get(Face, face_id).image_id
    assert needing(factory) == {"aligned": [image_id]}


def test_a_new_gender_version_writes_new_regressor_rows_next_to_the_old_ones(factory, settings, untrained_chain,
                                                                             tmp_path):
    write_faces(tmp_path / "photos", 2)
    run_job(factory, settings, tmp_path / "photos")
    register_version(factory, settings, "gender")
    again = run_job(factory, settings, tmp_path / "photos")
    assert len(again.chunks) == 1  # not "already annotated": the regressors must see the new gender
    with factory() as session:
        eyes = session.execute(select(Prediction.gender_version_id).where(Prediction.attribute == "eyes")).scalars()
        assert sorted(eyes) == [1, 1, 5, 5]
    assert summary(factory).outdated == 0
