import csv

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import select

from annotator.cli import main
from annotator.faces.alignment import TEMPLATE, apply_transform, similarity_transform
from annotator.faces.detection import detect_faces
from annotator.faces.extraction import ImageToExtract, extract_faces
from annotator.faces.modes import DETECTED_FACES, FaceMode, FaceOptions
from annotator.images.decoding import decode_photo
from annotator.jobs.pipeline import process_chunk
from annotator.models.specs import get_spec
from db.models import Face, ImageStatus, Job, JobImage, Prediction
from db.session import transaction
from tests.conftest import SHARED_DATA
from tests.photos import astronaut, collage, landscape, save_with_orientation
from tests.recorded_jobs import create_job


def _inside(point, crop, margin=3):
    x, y = point
    return crop.left + margin <= x <= crop.right - margin and crop.top + margin <= y <= crop.bottom - margin


def test_the_astronaut_has_one_face_whose_eyes_land_in_the_eyes_crop():
    (face,) = detect_faces(astronaut(), DETECTED_FACES)
    assert face.score > 0.99
    left, top, right, bottom = face.box
    assert 150 < left < right < 300 and 30 < top < bottom < 200
    aligned = apply_transform(similarity_transform(face.landmarks, TEMPLATE), face.landmarks)
    assert all(_inside(p, get_spec("eyes").crop) for p in aligned[:2])
    assert all(_inside(p, get_spec("mouth").crop) for p in aligned[3:])


@pytest.mark.parametrize("degrees", [-25.0, 30.0])
def test_a_tilted_head_comes_out_level(tmp_path, degrees):
    upright, tilted = tmp_path / "upright.png", tmp_path / "tilted.png"
    astronaut().save(upright)
    astronaut().rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128)).save(tilted)
    (a,) = extract_faces(ImageToExtract(upright), DETECTED_FACES, max_pixels=10**8)
    (b,) = extract_faces(ImageToExtract(tilted), DETECTED_FACES, max_pixels=10**8)
    # The same level face whatever the tilt (up to the detector's landmark jitter of a pixel or two).
    assert np.corrcoef(a.pixels.ravel(), b.pixels.ravel())[0, 1] > 0.9
    eyes = apply_transform(similarity_transform(b.detection.landmarks, TEMPLATE), b.detection.landmarks)[:2]
    assert abs(eyes[0][1] - eyes[1][1]) < 3


def test_a_collage_gives_one_face_per_pasted_face_left_to_right():
    faces = detect_faces(collage(), DETECTED_FACES)
    assert len(faces) == 3
    assert [f.box[0] for f in faces] == sorted(f.box[0] for f in faces)


def test_a_landscape_has_no_face():
    assert detect_faces(landscape(), DETECTED_FACES) == []


def test_the_minimum_face_size_drops_smaller_faces():
    assert detect_faces(astronaut(), FaceOptions(FaceMode.DETECT, min_face_size=120)) == []


@pytest.mark.parametrize("orientation", [6, 8])
def test_a_photo_rotated_by_its_exif_tag_gives_the_same_face(tmp_path, orientation):
    upright, rotated = tmp_path / "upright.jpg", tmp_path / "rotated.jpg"
    astronaut().save(upright, "JPEG", quality=95)
    save_with_orientation(astronaut(), rotated, orientation)
    assert Image.open(rotated).size == (512, 512) and Image.open(rotated).getexif()[0x0112] == orientation
    (a,) = extract_faces(ImageToExtract(upright), DETECTED_FACES, max_pixels=10**8)
    (b,) = extract_faces(ImageToExtract(rotated), DETECTED_FACES, max_pixels=10**8)
    np.testing.assert_allclose(a.detection.box, b.detection.box, atol=3)
    assert np.abs(a.pixels / 255.0 - b.pixels / 255.0).mean() < 0.03


def test_photos_are_decoded_upright_and_in_rgb(tmp_path):
    path = tmp_path / "grey.png"
    astronaut().convert("L").save(path)
    assert decode_photo(path).mode == "RGB"


def _photos(folder):
    folder.mkdir()
    astronaut().save(folder / "astronaut.jpg", quality=95)
    collage().save(folder / "group.jpg", quality=95)
    landscape().save(folder / "hills.jpg", quality=95)


def _run(factory, settings, folder, options=DETECTED_FACES):
    with transaction(factory) as session:
        job = create_job(session, folder, chunk_size=2, faces=options)
    for chunk in job.chunks:
        process_chunk(factory, settings, job.job_id, chunk)
    return job


def test_a_detect_job_records_every_face_and_no_face_images(factory, settings, untrained_chain, tmp_path):
    _photos(tmp_path / "photos")
    job = _run(factory, settings, tmp_path / "photos")
    with factory() as session:
        record = session.get(Job, job.job_id)
        assert (record.face_mode, record.face_options) == (
            "detect", {"detector": "mtcnn", "min_face_size": 32, "min_score": 0.9})
        members = {m.path.rsplit("/", 1)[-1]: m for m in session.scalars(select(JobImage))}
        faces = session.scalars(select(Face).order_by(Face.image_id, Face.index)).all()
        predictions = session.scalars(select(Prediction)).all()
    assert members["hills.jpg"].status == ImageStatus.FAILED.value and members["hills.jpg"].reason == "no_face"
    assert members["astronaut.jpg"].status == members["group.jpg"].status == ImageStatus.DONE.value
    assert len(faces) == 4 and {f.method for f in faces} == {"mtcnn-32-0.90"}
    assert all(len(f.box) == 4 and len(f.landmarks) == 5 and f.score > 0.9 for f in faces)
    assert len(predictions) == 4 * len(untrained_chain)

    again = _run(factory, settings, tmp_path / "photos")  # finished faces are skipped, not detected again
    assert again.skipped == 2 and len(again.chunks) == 1
    with factory() as session:
        assert len(session.scalars(select(Face)).all()) == 4


def test_recorded_faces_are_reused_not_detected_again(factory, settings, untrained_chain, tmp_path, monkeypatch):
    _photos(tmp_path / "photos")
    _run(factory, settings, tmp_path / "photos")
    with transaction(factory) as session:  # forget the predictions, keep the faces: as after a new model version
        for prediction in session.scalars(select(Prediction)):
            session.delete(prediction)
    # Extract in threads of this process, where the stand-in detector below is the one called.
    monkeypatch.setattr("annotator.faces.pool.uses_processes", lambda mode: False)
    monkeypatch.setattr("annotator.faces.extraction.detect_faces", lambda *a: pytest.fail("detected again"))
    with transaction(factory) as session:
        job = create_job(session, tmp_path / "photos" / "..", chunk_size=10, faces=DETECTED_FACES)
    for chunk in job.chunks:
        with pytest.raises(pytest.fail.Exception):  # hills.jpg has no recorded face, so it is searched again
            process_chunk(factory, settings, job.job_id, chunk)
    (tmp_path / "photos" / "hills.jpg").unlink()
    job = _run(factory, settings, tmp_path / "photos")
    with factory() as session:
        assert len(session.scalars(select(Prediction)).all()) == 4 * len(untrained_chain)
        assert {m.status for m in session.scalars(select(JobImage).where(JobImage.job_id == job.job_id))} == {"done"}


def test_show_draws_the_faces_of_a_photo(settings, untrained_chain, tmp_path):
    photo = tmp_path / "group.jpg"
    collage().save(photo, quality=95)
    result = CliRunner().invoke(main, ["show", str(photo), "-o", str(tmp_path / "sheet.png")])
    assert result.exit_code == 0, result.output
    assert result.output.count("face ") == 3 and "gender" in result.output and "not recorded" not in result.output
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.width > 640 and sheet.height >= 3 * 240


def test_show_finds_an_annotated_image_by_sha_prefix(factory, settings, untrained_chain, tmp_path):
    _photos(tmp_path / "photos")
    _run(factory, settings, tmp_path / "photos")
    with factory() as session:
        face = session.scalars(select(Face)).first()
        sha = face.image.sha256
    result = CliRunner().invoke(main, ["show", sha[:10], "-o", str(tmp_path / "one.png")])
    assert result.exit_code == 0, result.output
    assert "gender@" in result.output and "now" not in result.output
    assert (tmp_path / "one.png").exists()


def test_show_explains_an_unknown_target(settings, tmp_path):
    result = CliRunner().invoke(main, ["show", "cafebabe00"])
    assert result.exit_code == 1 and "no annotated image whose sha256 starts with it" in result.output


@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED_DATA / "utkface-adults").exists(), reason="needs ../shared/data/utkface-adults")
def test_at_least_97_percent_of_real_faces_are_found():
    folder = SHARED_DATA / "utkface-adults"
    with (folder / "manifest.csv").open() as handle:
        paths = [folder / row["path"] for row in csv.DictReader(handle)][::10]  # 300 of the 3,000, both genders
    found = sum(bool(extract_faces(ImageToExtract(p), DETECTED_FACES, max_pixels=10**8)) for p in paths)
    assert found / len(paths) >= 0.97, f"{found} of {len(paths)}"


def test_portraits_submitted_for_detection_get_a_hint(settings, untrained_chain, tmp_path):
    from annotator.images.portraits import write_portrait_folder

    write_portrait_folder(tmp_path / "portraits", 3)
    result = CliRunner().invoke(main, ["submit", str(tmp_path / "portraits"), "--wait"])
    assert result.exit_code == 0, result.output
    assert "no_face" in result.output and "submit them with `--faces aligned`" in result.output
