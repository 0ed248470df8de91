from sqlalchemy import delete, func, select, update

from annotator.jobs.staleness import (
    ChainVersions,
    already_annotated,
    images_needing_predictions,
    stale_summary,
)
from annotator.models.store import activate_version, active_chain_versions
from db.models import Face, Image, ModelVersion, Prediction
from db.session import transaction
from tests.conftest import fake_chain, record_annotations, write_faces


def new_fake_version(factory, name):
    """Register and activate the next version of ``name`` (no model file: nothing runs here)."""
    with transaction(factory) as session:
        number = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name)) + 1
        session.execute(update(ModelVersion).where(ModelVersion.name == name).values(active=False))
        session.add(ModelVersion(name=name, version=number, path="no file", sha256="0" * 64, input_spec={},
                                 metrics={}, active=True))


def chain(session):
    return ChainVersions.of(active_chain_versions(session))


def summary(factory):
    with factory() as session:
        return stale_summary(session, chain(session))


def needing(factory):
    with factory() as session:
        return images_needing_predictions(session, chain(session))


def image_ids(factory, folder):
    with factory() as session:
        return set(session.scalars(select(Image.id).where(Image.path.contains(f"/{folder}/"))))


def test_staleness_follows_the_active_versions(factory, tmp_path):
    fake_chain(factory)
    record_annotations(factory, write_faces(tmp_path / "old", 3))
    assert (summary(factory).faces, summary(factory).outdated) == (3, 0)
    assert needing(factory) == {}

    new_fake_version(factory, "eyes")
    record_annotations(factory, write_faces(tmp_path / "new", 2, seed=5))  # annotated by eyes@2 from the start
    after_eyes = summary(factory)
    assert (after_eyes.faces, after_eyes.outdated) == (5, 3)
    assert after_eyes.stale == {"gender": 0, "eyes": 3, "mouth": 0, "background_mean": 0}
    assert set(needing(factory)["aligned"]) == image_ids(factory, "old")

    with transaction(factory) as session:  # back to eyes@1: derived, so the old rows are current again
        activate_version(session, "eyes", 1)
    assert set(needing(factory)["aligned"]) == image_ids(factory, "new")

    new_fake_version(factory, "gender")  # regressors consumed gender: everything is stale
    after_gender = summary(factory)
    assert after_gender.outdated == 5
    assert after_gender.stale == {"gender": 5, "eyes": 5, "mouth": 5, "background_mean": 5}


def test_a_regressor_row_of_the_active_version_with_an_old_gender_is_stale(factory, tmp_path):
    fake_chain(factory)
    record_annotations(factory, write_faces(tmp_path / "photos", 2))
    new_fake_version(factory, "gender")
    with transaction(factory) as session:  # the new gender's rows exist, the regressors' do not yet
        gender_id = chain(session).gender_version_id
        for face_id in session.scalars(select(Face.id)).all():
            session.add(Prediction(face_id=face_id, attribute="gender", value=0.5, model_version_id=gender_id,
                                   gender_version_id=gender_id))
    found = summary(factory)
    assert found.outdated == 2 and found.stale == {"gender": 0, "eyes": 2, "mouth": 2, "background_mean": 2}
    with factory() as session:
        assert already_annotated(session, list(image_ids(factory, "photos")), chain(session), "aligned") == set()


def test_a_face_without_any_prediction_of_an_attribute_is_missing(factory, tmp_path):
    fake_chain(factory)
    record_annotations(factory, write_faces(tmp_path / "photos", 2))
    with transaction(factory) as session:
        face_id = session.scalar(select(Face.id).limit(1))
        session.execute(delete(Prediction).where(Prediction.face_id == face_id, Prediction.attribute == "mouth"))
    found = summary(factory)
    assert (found.outdated, found.missing["mouth"], found.stale["mouth"]) == (1, 1, 0)
    with factory() as session:
        image_id = session.get(Face, face_id).image_id
        assert already_annotated(session, [image_id], chain(session), "aligned") == set()
    assert needing(factory) == {"aligned": [image_id]}
