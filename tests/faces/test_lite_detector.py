"""MTCNN's networks on XNNPACK: the faces TensorFlow finds, converted once and cached, TensorFlow where it must."""

import logging

import numpy as np
import pytest

from annotator.faces import detection, lite_detector
from annotator.faces.detection import detect_faces
from annotator.faces.lite_detector import LiteStage, cache_folder
from annotator.faces.modes import DETECTED_FACES
from annotator.images.decoding import decode_photo
from tests.conftest import SHARED_DATA
from tests.photos import astronaut, collage, landscape


@pytest.fixture
def fresh_detector(tmp_path, monkeypatch):
    """Build the detector anew in this test, under a home of its own, and leave the process's detector as it was."""
    monkeypatch.setenv("ANNOTATE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(detection, "_detector", None)
    yield
    monkeypatch.setattr(detection, "_detector", None)


def _engines():
    cascade = detection._cascade()
    return {type(network) for network in (cascade.pnet, cascade.rnet, cascade.onet)}


def _photos():
    real = sorted((SHARED_DATA / "utkface-adults" / "images").rglob("*.jpg"))[:40]
    return [astronaut(), collage(), landscape()] + [decode_photo(path) for path in real]


def test_the_networks_run_on_xnnpack_and_find_the_faces_tensorflow_finds(fresh_detector, monkeypatch):
    photos = _photos()
    assert _engines() == {LiteStage}
    on_xnnpack = [detect_faces(photo, DETECTED_FACES) for photo in photos]
    monkeypatch.setattr(detection, "_detector", None)
    monkeypatch.setattr(detection, "xnnpack_stages", lambda *args: None)
    on_tensorflow = [detect_faces(photo, DETECTED_FACES) for photo in photos]
    assert _engines() != {LiteStage}
    assert [len(faces) for faces in on_xnnpack] == [len(faces) for faces in on_tensorflow]
    assert sum(map(len, on_xnnpack)) >= 4  # the astronaut and the collage's three at least: a real comparison
    for ours, theirs in zip(on_xnnpack, on_tensorflow):
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.box, b.box, atol=1e-2)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)
            assert a.score == pytest.approx(b.score, abs=1e-4)


def test_the_converted_networks_are_cached_and_later_loaded_without_converting(fresh_detector, tmp_path,
                                                                                      monkeypatch):
    (first,) = detect_faces(astronaut(), DETECTED_FACES)
    cached = sorted(path.name for path in cache_folder().iterdir())
    assert cached == ["onet.tflite", "pnet.tflite", "rnet.tflite"]
    assert cache_folder().parents[1] == tmp_path / "home"  # ANNOTATE_HOME/cache/mtcnn-VERSION

    def no_converting(*args):
        raise AssertionError("converted although cached")

    monkeypatch.setattr(detection, "_detector", None)
    monkeypatch.setattr(lite_detector, "tflite_model", no_converting)
    (again,) = detect_faces(astronaut(), DETECTED_FACES)
    assert _engines() == {LiteStage}
    assert again.box == first.box


def test_a_damaged_cache_is_converted_again(fresh_detector, monkeypatch, caplog):
    detection._cascade()
    damaged = cache_folder() / "rnet.tflite"
    damaged.write_bytes(b"not a model")
    monkeypatch.setattr(detection, "_detector", None)
    with caplog.at_level(logging.WARNING):
        assert detect_faces(astronaut(), DETECTED_FACES)
    assert _engines() == {LiteStage}
    assert "Converting MTCNN's rnet again" in caplog.text
    assert damaged.read_bytes()[4:8] == b"TFL3"  # a TensorFlow Lite flatbuffer again


def test_an_unwritable_cache_only_costs_a_conversion(fresh_detector, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "home"
    blocker.write_text("a file where the home's folder would be")
    with caplog.at_level(logging.WARNING):
        assert detect_faces(astronaut(), DETECTED_FACES)
    assert _engines() == {LiteStage}
    assert "MTCNN's pnet is not cached" in caplog.text


def test_a_network_tensorflow_lite_cannot_convert_runs_on_tensorflow(fresh_detector, monkeypatch, caplog):
    def refuse(*args):
        raise RuntimeError("an op TensorFlow Lite lacks")

    monkeypatch.setattr(lite_detector, "tflite_model", refuse)
    with caplog.at_level(logging.WARNING):
        assert detect_faces(astronaut(), DETECTED_FACES)
    assert LiteStage not in _engines()
    assert "MTCNN runs on TensorFlow" in caplog.text and "an op TensorFlow Lite lacks" in caplog.text


def test_without_litert_the_networks_run_on_tensorflow(fresh_detector, monkeypatch):
    monkeypatch.setattr(lite_detector, "xnnpack_applies_early", lambda: False)
    monkeypatch.setattr(lite_detector, "xnnpack_applies", lambda: False)
    assert detect_faces(astronaut(), DETECTED_FACES)
    assert LiteStage not in _engines()
    assert not cache_folder().exists()
