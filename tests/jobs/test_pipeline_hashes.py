"""The chunk pipeline stores each image's perceptual hash the first time it decodes the image."""

from sqlalchemy import select

from annotator.images.decoding import decode_photo
from annotator.images.perceptual import hamming, perceptual_hash
from db.models import Image
from db.session import transaction
from tests.conftest import write_faces
from tests.jobs.test_pipeline import run_job


def test_a_job_stores_the_hash_of_every_image_it_decodes(factory, settings, untrained_chain, tmp_path):
    paths = write_faces(tmp_path / "photos", 5, fmt="JPEG")
    (tmp_path / "photos" / "broken.jpg").write_bytes(paths[0].read_bytes()[:300])
    run_job(factory, settings, tmp_path / "photos")
    with factory() as session:
        stored = dict(session.execute(select(Image.path, Image.phash)).all())
    assert stored.pop(str(tmp_path / "photos" / "broken.jpg")) is None  # never decoded, so never hashed
    assert stored == {str(path): perceptual_hash(decode_photo(path)) for path in paths}


def test_an_image_hashed_once_keeps_its_hash_when_a_later_job_decodes_it(factory, settings, untrained_chain,
                                                                         tmp_path):
    write_faces(tmp_path / "photos", 2)
    run_job(factory, settings, tmp_path / "photos")
    with transaction(factory) as session:
        session.execute(Image.__table__.update().values(phash="f" * 64))
    from tests.conftest import register_version

    register_version(factory, settings, "eyes")  # a new version: the next job decodes both images again
    run_job(factory, settings, tmp_path / "photos")
    with factory() as session:
        assert set(session.scalars(select(Image.phash))) == {"f" * 64}


def test_images_without_a_hash_are_hashed_when_asked_and_unreadable_ones_stay_none(factory, tmp_path):
    from annotator.images.perceptual import stored_phashes
    from tests.conftest import fake_chain, record_annotations

    fake_chain(factory)
    paths = write_faces(tmp_path / "photos", 3, fmt="JPEG")
    shas = record_annotations(factory, paths)
    paths[2].unlink()
    with transaction(factory) as session:
        found = stored_phashes(session, [shas[p.name] for p in paths[1:]])
    assert set(found) == {shas[paths[1].name], shas[paths[2].name]}
    assert found[shas[paths[2].name]] is None
    assert hamming(found[shas[paths[1].name]], perceptual_hash(decode_photo(paths[1]))) <= 2
    with factory() as session:
        stored = dict(session.execute(select(Image.sha256, Image.phash)).all())
    assert stored == {shas[paths[0].name]: None, **found}  # only the asked-for images were hashed
