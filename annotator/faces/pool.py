"""Decode, detect and align many images at once, on every core, and hand them on in order.

A pool sized to the machine (``ANNOTATE_DECODE_WORKERS``, default: one worker per CPU) extracts a chunk's images
while the caller runs the chain on the faces that came back. Aligned portraits are only decoded and resized
(Pillow releases the GIL), so their workers are threads. Detection is MTCNN: a dozen small network calls per
photo with NumPy in between, mostly under the GIL, so photos to search go to worker processes, each on one thread,
so N workers keep N cores busy and one worker keeps one. ``bench/throughput.py --ceiling`` measures both kinds.
The processes are forked by a fork server that imported the extraction code once, and TensorFlow too where MTCNN's
networks need it, without running it (:mod:`annotator.faces.forkserver`; TensorFlow hangs in a child forked after
it ran), so N workers pay for one import, not N; where there is no fork server they are spawned.

A pool lives as long as its process: its processes load the detector once, and every later chunk reuses them
(concurrent chunks share them). At most two images per worker are being extracted (plus
:data:`REMOTE_READ_AHEAD` reads from an object store) and at most :data:`EXTRACTED_AHEAD` extracted images wait
for the caller, so the workers go on while the caller runs the chain, and memory stays bounded whatever the
chunk size. A bad image still comes back with its reason code; an image that kills its worker process is tried
once more on its own in a fresh process and, if that dies too, recorded as ``decode_error``: the chunk goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from annotator.faces.extraction import ExtractedImage, ImageToExtract, extract_image
from annotator.faces.modes import DETECTED_FACES, FaceMode, FaceOptions
from annotator.images.decoding import DecodeError, DecodeFailure, ReasonCode, read_checked
from annotator.images.sources import is_uri

REMOTE_READ_AHEAD = 8
"""Objects of a store read at once ahead of extraction (each waits on the network; a few are in memory at a time)."""
IN_FLIGHT_PER_WORKER = 2  # images handed out per worker: one extracted while the next waits its turn
EXTRACTED_AHEAD = 128
"""Extracted images that may wait for the caller (their faces, 43 KB each) while it runs the chain on a batch."""

Extract = Callable[[ImageToExtract, FaceOptions, int, "bytes | None"], ExtractedImage]


def _start_worker_process() -> None:
    """Set up a worker process: one thread, Ctrl-C left to the parent, the detector loaded (and, where its
    networks run on TensorFlow, traced) before the first photo."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool; a child must not print a traceback
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[name] = "1"
    from PIL import Image

    from annotator.faces.detection import detect_faces
    from annotator.faces.lite_detector import cached_without_tensorflow
    from annotator.tf_runtime import import_tensorflow

    if not cached_without_tensorflow():
        tf = import_tensorflow()
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    detect_faces(Image.new("RGB", (64, 64)), DETECTED_FACES)


class ExtractionPool:
    """``workers`` threads or processes running ``extract`` (picklable for processes) for many images."""

    def __init__(self, workers: int, *, processes: bool, extract: Extract = extract_image) -> None:
        if workers < 1:
            raise ValueError(f"An extraction pool needs at least one worker. Received: workers={workers}.")
        self.workers, self.processes, self.extract = workers, processes, extract
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._alone = threading.Lock()  # retries after a crash run one at a time, so the culprit is known
        self._threads = threading.BoundedSemaphore(workers)

    def _process_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(self.workers, mp_context=_process_context(),
                                                     initializer=_start_worker_process)
            return self._executor

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    def _in_process(self, item: ImageToExtract, options: FaceOptions, max_pixels: int,
                    data: bytes | None) -> ExtractedImage:
        pool = self._process_pool()
        try:
            return pool.submit(self.extract, item, options, max_pixels, data).result()
        except BrokenProcessPool:
            self._replace(pool)
        with self._alone:  # the pool died under several images: try each again on its own
            pool = self._process_pool()
            try:
                return pool.submit(self.extract, item, options, max_pixels, data).result()
            except BrokenProcessPool:
                self._replace(pool)
        return ExtractedImage([], DecodeFailure(
            ReasonCode.DECODE_ERROR, "the process decoding this image died, twice (a crash in an image library)"))

    def _one(self, item: ImageToExtract, options: FaceOptions, max_pixels: int) -> ExtractedImage:
        try:
            data = read_checked(item.path, item.sha256) if is_uri(item.path) else None
        except DecodeError as error:
            return ExtractedImage([], error.failure)
        if self.processes:
            return self._in_process(item, options, max_pixels, data)
        with self._threads:
            return self.extract(item, options, max_pixels, data)

    def map(self, items: Sequence[ImageToExtract], options: FaceOptions, *,
            max_pixels: int) -> OrderedExtraction:
        """The extracted images, in the order of ``items``, each computed ahead of the consumer; the first ones
        are handed out at once, so the caller can load its models while they are extracted."""
        in_flight = self.workers * IN_FLIGHT_PER_WORKER
        if any(is_uri(item.path) for item in items):
            in_flight += REMOTE_READ_AHEAD
        return OrderedExtraction(lambda item: self._one(item, options, max_pixels), items, in_flight,
                                 EXTRACTED_AHEAD)

    def close(self) -> None:
        """Stop the worker processes (if any)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None


class OrderedExtraction(Iterator[ExtractedImage]):
    """``extract(item)`` for every item, yielded in order: at most ``in_flight`` being extracted at a time and at
    most ``ahead`` more finished and waiting to be taken; :meth:`close` (or the end) cancels what has not started.

    Images are handed out as extractions finish, not as the caller takes them, so the workers keep going while
    the caller is busy with what it took."""

    def __init__(self, extract: Callable[[ImageToExtract], ExtractedImage], items: Sequence[ImageToExtract],
                 in_flight: int, ahead: int = 0) -> None:
        self._extract, self._items = extract, iter(items)
        self._in_flight, self._window = in_flight, in_flight + ahead
        self._dispatch = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="annotate-extract")
        self._pending: deque[Future[ExtractedImage]] = deque()  # handed out, not yet taken, in order
        self._extracting = 0
        self._exhausted = self._closed = False
        # Re-entrant: a future that is already done runs its callback at once, inside _hand_out.
        self._changed = threading.Condition(threading.RLock())
        self._hand_out()

    def _hand_out(self) -> None:
        with self._changed:
            while not (self._exhausted or self._closed) and self._extracting < self._in_flight \
                    and len(self._pending) < self._window:
                item = next(self._items, None)
                if item is None:
                    self._exhausted = True
                    break
                self._extracting += 1
                future = self._dispatch.submit(self._extract, item)
                self._pending.append(future)
                future.add_done_callback(self._finished)
            self._changed.notify_all()

    def _finished(self, _: Future[ExtractedImage]) -> None:
        with self._changed:
            self._extracting -= 1
            self._hand_out()

    def __next__(self) -> ExtractedImage:
        with self._changed:
            # An extraction's callback may not have handed out the next image yet: wait for it, or for the end.
            self._changed.wait_for(lambda: self._pending or self._exhausted or self._closed)
            done = self._pending.popleft() if self._pending else None
        if done is None:
            self.close()
            raise StopIteration
        self._hand_out()
        try:
            return done.result()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop handing out images; wait only for those already being extracted."""
        with self._changed:
            self._closed = True
            self._pending.clear()
            self._changed.notify_all()
        self._dispatch.shutdown(wait=True, cancel_futures=True)


_pools: dict[tuple[int, bool], ExtractionPool] = {}
_pools_lock = threading.Lock()


def uses_processes(mode: FaceMode) -> bool:
    """Whether images of ``mode`` are extracted in worker processes (detection) or threads (aligned portraits,
    and in a daemonic process such as a Celery prefork child, which may not start processes of its own)."""
    return mode is not FaceMode.ALIGNED and not multiprocessing.current_process().daemon


def extraction_pool(workers: int, mode: FaceMode) -> ExtractionPool:
    """This process's pool of ``workers`` for faces of ``mode``, made on first use and kept."""
    key = (workers, uses_processes(mode))
    with _pools_lock:
        if key not in _pools:
            _pools[key] = ExtractionPool(workers, processes=key[1])
        return _pools[key]


def _process_context() -> multiprocessing.context.BaseContext:
    """Fork server with the extraction code imported (see :mod:`annotator.faces.forkserver`), or spawn without one."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["annotator.faces.forkserver"])
    return context


def extract_images(items: Sequence[ImageToExtract], options: FaceOptions, *, max_pixels: int,
                   workers: int) -> OrderedExtraction:
    """:func:`~annotator.faces.extraction.extract_image` for every item, in order, by this process's pool of
    ``workers`` for the face mode of ``options``."""
    return extraction_pool(workers, options.mode).map(items, options, max_pixels=max_pixels)
