from PIL import Image
from sqlalchemy import select

from annotator.faces.quality import backfill_quality
from db.models import Face, FaceQuality
from db.models import Image as ImageRow
from tests.conftest import write_faces
from tests.jobs.test_pipeline import run_job


def test_a_chunk_stores_each_face_s_quality_as_the_backfill_would_measure_it(factory, settings, untrained_chain,
                                                                            tmp_path):
    paths = write_faces(tmp_path / "photos", 3)
    Image.new("RGB", (120, 120), (250, 250, 250)).save(paths[2])
    run_job(factory, settings, tmp_path / "photos")
    with factory() as session:
        stored = {path.rsplit("/", 1)[-1]: (q.brightness, q.sharpness, q.bright, q.blurry) for path, q in session.execute(
            select(ImageRow.path, FaceQuality).join(Face, Face.image_id == ImageRow.id)
            .join(FaceQuality, FaceQuality.face_id == Face.id))}
    assert set(stored) == {"face_000.png", "face_001.png", "face_002.png"}
    assert stored["face_002.png"][2:] == (True, True)  # white and flat
    assert stored["face_000.png"][2:] == (False, False)  # random pixels: mid grey, sharp
    with factory() as session:
        session.execute(FaceQuality.__table__.delete())
        session.commit()
    assert backfill_quality(factory, max_pixels=settings.max_image_pixels) == 3
    with factory() as session:
        again = {path.rsplit("/", 1)[-1]: (q.brightness, q.sharpness, q.bright, q.blurry) for path, q in session.execute(
            select(ImageRow.path, FaceQuality).join(Face, Face.image_id == ImageRow.id)
            .join(FaceQuality, FaceQuality.face_id == Face.id))}
    assert again == stored
