import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from annotator.faces.quality import BLURRY_BELOW, backfill_quality, flag_values, measure_faces, quality_rows
from annotator.images.portraits import generate_portraits
from db.models import FaceQuality
from tests.conftest import fake_chain, record_annotations, write_faces


def test_brightness_is_the_mean_grey_of_the_face_and_a_flat_face_has_no_sharpness():
    flat = np.full((2, 120, 120, 3), 0.25, np.float32)
    flat[1] = 0.9
    measures = measure_faces(flat)
    assert measures.brightness == pytest.approx([0.25, 0.9], abs=1e-5)
    assert measures.sharpness == pytest.approx([0.0, 0.0], abs=1e-6)


def test_generated_portraits_are_sharp_and_a_blurred_copy_is_flagged_blurry():
    face = generate_portraits(1, seed=3).faces[0]
    blurred = np.asarray(Image.fromarray((face * 255).astype(np.uint8)).resize((12, 12)).resize((120, 120),
                         Image.Resampling.BILINEAR), np.float32) / 255
    measures = measure_faces(np.stack([face, blurred]))
    flags = flag_values(measures.brightness, measures.sharpness, np.array([np.nan, np.nan]))
    assert measures.sharpness[0] > 10 * BLURRY_BELOW
    assert flags["blurry"].tolist() == [False, True]


def test_flags_of_dark_bright_and_low_score_faces():
    faces = np.stack([np.full((120, 120, 3), v, np.float32) for v in (0.05, 0.5, 0.97, 0.5)])
    faces += np.random.default_rng(0).normal(0, 0.05, faces.shape).astype(np.float32)  # texture: not blurry
    rows = quality_rows([1, 2, 3, 4], np.clip(faces, 0, 1), [None, 0.999, 0.97, 0.91])
    assert [(r["dark"], r["bright"], r["blurry"], r["low_score"]) for r in rows] == [
        (True, False, False, False), (False, False, False, False), (False, True, False, False),
        (False, False, False, True)]


def test_faces_of_shape_other_than_rgb_batches_are_refused():
    with pytest.raises(ValueError, match="Received: shape"):
        measure_faces(np.zeros((120, 120, 3)))


def test_backfill_measures_old_faces_once_and_marks_gone_files(factory, settings, tmp_path):
    fake_chain(factory)
    paths = write_faces(tmp_path / "photos", 3)
    Image.new("RGB", (120, 120), (3, 3, 3)).save(paths[1])  # a black face, before it is recorded
    record_annotations(factory, paths)
    paths[2].unlink()
    progress = []
    assert backfill_quality(factory, max_pixels=settings.max_image_pixels,
                            on_progress=lambda done, total: progress.append((done, total))) == 3
    assert progress[-1] == (3, 3)
    with factory() as session:
        rows = session.scalars(select(FaceQuality).order_by(FaceQuality.face_id)).all()
    assert [r.dark for r in rows] == [False, True, False]
    assert rows[0].brightness == pytest.approx(0.5, abs=0.05) and rows[0].sharpness > BLURRY_BELOW
    assert rows[2].brightness is None and rows[2].sharpness is None  # its file is gone: unknown, not retried
    assert backfill_quality(factory, max_pixels=settings.max_image_pixels) == 0

