"""MTCNN's cascade in NumPy: the faces the ``mtcnn`` package finds, and no TensorFlow once the networks are cached."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from annotator.faces import detection
from annotator.faces.cascade import Cascade, area_resize, crop_and_resize, pyramid_scales
from annotator.faces.detection import TensorFlowStage, detect_faces
from annotator.faces.modes import DETECTED_FACES
from annotator.images.decoding import decode_photo
from annotator.tf_runtime import import_tensorflow
from tests.conftest import SHARED_DATA
from tests.photos import astronaut, collage, landscape


@pytest.mark.parametrize(("size", "resized"), [((125, 131), (75, 78)), ((200, 300), (37, 55)), ((13, 14), (13, 14))])
def test_area_resize_is_tensorflows(size, resized):
    tf = import_tensorflow()
    image = np.random.default_rng(0).random((*size, 3), np.float32)
    theirs = tf.image.resize(image[None], resized, method="area")[0].numpy()
    np.testing.assert_allclose(area_resize(image, *resized), theirs, atol=1e-5)


def test_patches_are_tensorflows_crop_and_resize_with_the_packages_box_convention():
    tf = import_tensorflow()
    image = np.random.default_rng(1).random((125, 131, 3), np.float32)
    boxes = np.array([[10.3, 20.2, 60.7, 70.9], [-5.0, -3.0, 40.0, 38.0], [100.0, 100.0, 150.0, 160.0]])  # x1 y1 x2 y2
    corners = boxes[:, [1, 0, 3, 2]] / np.array([125, 131, 125, 131])  # y1 x1 y2 x2 as fractions of the size
    theirs = tf.image.crop_and_resize(image[None], corners, np.zeros(3, np.int32), (24, 24)).numpy()
    ours = crop_and_resize(image, boxes, 24)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert (ours[1, 0] == 0).all()  # beyond the picture's edge: zero, as TensorFlow extrapolates


def test_a_picture_smaller_than_the_window_has_no_pyramid():
    assert len(pyramid_scales(16, 200, 20)) == 0
    assert len(pyramid_scales(125, 125, 20)) == 6


def _photos():
    real = sorted((SHARED_DATA / "utkface-adults" / "images").rglob("*.jpg"))[::100]
    return [astronaut(), collage(), landscape()] + [decode_photo(path) for path in real]


def test_the_cascade_finds_the_faces_the_mtcnn_package_finds():
    from mtcnn import MTCNN

    package = MTCNN()
    networks = [TensorFlowStage(detection._compiled(stage._model, index)) for index, stage in enumerate(package.stages)]
    cascade = Cascade(*networks)
    found = 0
    for photo in _photos():
        pixels = np.asarray(photo.convert("RGB"))
        theirs = np.asarray(package.detect_faces(pixels, min_face_size=20, box_format="xyxy", output_type="numpy"))
        ours = cascade(pixels, 20)
        theirs = theirs.reshape(-1, 16)
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours[:, 5], theirs[:, 5], atol=1e-4)  # scores
        np.testing.assert_allclose(ours[:, 1:5], theirs[:, 1:5], atol=1e-2)  # boxes, in pixels
        np.testing.assert_allclose(ours[:, 6:], theirs[:, 6:], atol=1e-2)  # landmarks
        found += len(ours)
    assert found >= 4  # the astronaut and the collage's three at least: a real comparison


def test_a_process_with_the_networks_cached_finds_faces_without_tensorflow(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNOTATE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(detection, "_detector", None)
    (expected,) = detect_faces(astronaut(), DETECTED_FACES)  # converts the networks into the home's cache
    monkeypatch.setattr(detection, "_detector", None)
    script = textwrap.dedent("""
        import sys
        import annotator.faces.forkserver  # what the extraction processes' fork server imports
        from annotator.faces.detection import detect_faces
        from annotator.faces.modes import DETECTED_FACES
        from tests.photos import astronaut
        (face,) = detect_faces(astronaut(), DETECTED_FACES)
        print(*face.box, "tensorflow" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env={**os.environ, "ANNOTATE_HOME": str(tmp_path / "home")})
    *box, imported = result.stdout.split()
    assert imported == "False"
    np.testing.assert_allclose([float(v) for v in box], expected.box, atol=1e-6)
