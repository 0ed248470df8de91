import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from annotator.faces.extraction import ImageToExtract, extract_image
from annotator.faces.modes import ALIGNED_FACES, DETECTED_FACES
from annotator.faces.pool import (
    EXTRACTED_AHEAD,
    IN_FLIGHT_PER_WORKER,
    ExtractionPool,
    OrderedExtraction,
    extract_images,
    extraction_pool,
)
from annotator.images.decoding import ReasonCode
from tests.photos import astronaut, collage, landscape


def crash_on_marked(item, options, max_pixels, data):
    """Extraction that kills its process on a file named crash*: what a segfault in an image library does."""
    if os.path.basename(str(item.path)).startswith("crash"):
        os._exit(3)
    return extract_image(item, options, max_pixels, data)


def where_extracted(item, options, max_pixels, data):
    """Extraction that reports the process it ran in and that process's parent."""
    return os.getpid(), os.getppid()


def _portraits(folder, count):
    folder.mkdir()
    for index in range(count):
        Image.new("RGB", (40, 40), (index * 7 % 256, 90, 30)).save(folder / f"{index:03d}.png")
    return sorted(folder.iterdir())


def test_images_come_back_in_order_with_their_reason_codes(tmp_path):
    paths = _portraits(tmp_path / "set", 40)
    (tmp_path / "set" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    items = [ImageToExtract(p) for p in paths[:20]] + [ImageToExtract(tmp_path / "set" / "bad.png"),
                                                       ImageToExtract(tmp_path / "missing.png")]
    items += [ImageToExtract(p) for p in paths[20:]]
    results = list(extract_images(items, ALIGNED_FACES, max_pixels=10**8, workers=2))
    assert [r.failure.reason if r.failure else None for r in results] == (
        [None] * 20 + [ReasonCode.DECODE_ERROR, ReasonCode.UNREADABLE] + [None] * 20)
    reds = [int(r.faces[0].pixels[60, 60, 0]) for r in results if r.faces]
    assert reds == [index * 7 % 256 for index in range(40)]  # each face is its own image's, in order
    assert all(r.faces[0].pixels.dtype == np.uint8 for r in results if r.faces)
    assert list(extract_images([], ALIGNED_FACES, max_pixels=10**8, workers=2)) == []


def _counting(extracted, lock):
    def counting(item, options, max_pixels, data):
        with lock:
            extracted.append(item.path)
        return extract_image(item, options, max_pixels, data)

    return counting


def _wait_until(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_workers_go_on_while_the_consumer_is_busy_up_to_a_bounded_window(tmp_path):
    paths = _portraits(tmp_path / "set", EXTRACTED_AHEAD + 60)
    extracted, lock = [], threading.Lock()
    pool = ExtractionPool(2, processes=False, extract=_counting(extracted, lock))
    images = pool.map([ImageToExtract(p) for p in paths], ALIGNED_FACES, max_pixels=10**8)
    first = next(images)
    # The consumer holds its image (running the chain, say): the workers fill the window and then stop.
    window = 2 * IN_FLIGHT_PER_WORKER + EXTRACTED_AHEAD
    _wait_until(lambda: len(extracted) >= window + 1)
    time.sleep(0.3)
    assert len(extracted) == window + 1  # the one taken, and a full window waiting: memory stays bounded
    rest = list(images)
    assert [int(r.faces[0].pixels[60, 60, 0]) for r in [first, *rest]] == [
        index * 7 % 256 for index in range(len(paths))]


def test_a_consumer_that_stops_early_leaves_the_rest_of_the_chunk_alone(tmp_path):
    paths = _portraits(tmp_path / "set", EXTRACTED_AHEAD + 200)
    extracted, lock = [], threading.Lock()
    pool = ExtractionPool(2, processes=False, extract=_counting(extracted, lock))
    images = pool.map([ImageToExtract(p) for p in paths], ALIGNED_FACES, max_pixels=10**8)
    next(images)
    images.close()
    stopped_at = len(extracted)
    time.sleep(0.3)
    assert len(extracted) == stopped_at <= 2 * IN_FLIGHT_PER_WORKER + EXTRACTED_AHEAD + 1 < len(paths)


def test_a_slow_hand_out_never_ends_the_images_early():
    # One image in flight: the consumer may ask for the next before the finished one's callback handed it out.
    for _ in range(200):
        images = OrderedExtraction(lambda n: n, list(range(5)), in_flight=1)
        assert list(images) == list(range(5))


def test_worker_processes_find_the_same_faces_as_this_process(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    astronaut().save(folder / "astronaut.jpg", quality=95)
    collage().save(folder / "group.jpg", quality=95)
    landscape().save(folder / "hills.jpg", quality=95)
    items = [ImageToExtract(folder / name) for name in ("astronaut.jpg", "group.jpg", "hills.jpg")] * 2
    here = [extract_image(item, DETECTED_FACES, 10**8) for item in items]
    pool = extraction_pool(2, DETECTED_FACES.mode)
    assert pool.processes and pool is extraction_pool(2, DETECTED_FACES.mode)  # kept for the next chunk
    there = list(pool.map(items, DETECTED_FACES, max_pixels=10**8))
    assert [len(r.faces) for r in there] == [len(r.faces) for r in here] == [1, 3, 0] * 2
    for a, b in zip(here, there, strict=True):
        assert a.phash == b.phash
        for face_a, face_b in zip(a.faces, b.faces, strict=True):
            np.testing.assert_allclose(face_a.detection.box, face_b.detection.box, atol=1e-3)
            assert np.abs(face_a.pixels.astype(int) - face_b.pixels.astype(int)).max() <= 1


def test_worker_processes_are_forked_by_one_server_that_imported_the_extraction_code(tmp_path):
    paths = _portraits(tmp_path / "set", 8)
    pool = ExtractionPool(2, processes=True, extract=where_extracted)
    try:
        places = set(pool.map([ImageToExtract(p) for p in paths], ALIGNED_FACES, max_pixels=10**8))
    finally:
        pool.close()
    assert {pid for pid, _ in places} and len({parent for _, parent in places}) == 1
    server = next(iter(places))[1]
    assert server != os.getpid()
    maps = Path(f"/proc/{server}/maps").read_text()
    assert "PIL/_imaging" in maps  # imported once, there, for every worker it forks


def test_before_the_networks_are_cached_the_fork_server_imports_tensorflow_without_starting_it(tmp_path):
    # A child forked after TensorFlow ran would hang: the server's import must create no context.
    probe = ("import annotator.faces.forkserver, sys; from tensorflow.python.eager import context; "
             "assert 'mtcnn' in sys.modules and context.context_safe() is None")
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=300,
                   env={**os.environ, "ANNOTATE_HOME": str(tmp_path / "empty-home")})


def test_an_image_that_kills_its_worker_process_fails_alone_and_the_rest_go_on(tmp_path):
    paths = _portraits(tmp_path / "set", 12)
    (tmp_path / "set" / "crash.png").write_bytes(paths[0].read_bytes())
    items = [ImageToExtract(p) for p in paths[:6]] + [ImageToExtract(tmp_path / "set" / "crash.png")]
    items += [ImageToExtract(p) for p in paths[6:]]
    pool = ExtractionPool(2, processes=True, extract=crash_on_marked)
    try:
        results = list(pool.map(items, ALIGNED_FACES, max_pixels=10**8))
        again = list(pool.map(items[:3], ALIGNED_FACES, max_pixels=10**8))  # a fresh process took over
    finally:
        pool.close()
    assert [r.failure.reason if r.failure else None for r in results] == [None] * 6 + [ReasonCode.DECODE_ERROR] + [
        None] * 6
    assert "died" in results[6].failure.detail
    assert [len(r.faces) for r in again] == [1, 1, 1]


def test_a_daemonic_process_extracts_in_threads(monkeypatch):
    # A Celery prefork child is daemonic, and Python forbids it to start processes of its own.
    from annotator.faces.modes import FaceMode
    from annotator.faces.pool import uses_processes

    assert uses_processes(FaceMode.DETECT) and not uses_processes(FaceMode.ALIGNED)
    monkeypatch.setattr("multiprocessing.current_process", lambda: type("Child", (), {"daemon": True})())
    assert not uses_processes(FaceMode.DETECT)
