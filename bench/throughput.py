"""Images per second of the data path and of the service, each ratio measured within one run.

    python bench/throughput.py [--images 3000] [--chunk-size 256] [--faces aligned|detect]
    python bench/throughput.py --ceiling [--images 500]
    python bench/throughput.py --submit [--images 1000] [--against ../previous-checkout]
    python bench/throughput.py --start
    python bench/throughput.py --exit

Default mode: first the cost per image of each stage, on up to 200 of the images: decoding an aligned portrait,
decoding plus face detection plus alignment (MTCNN's networks on XNNPACK, the default on a CPU, and on
TensorFlow), and the chain per face (wall and CPU time) in float32 on TensorFlow,
in float32 on XNNPACK (what runs by default on a CPU) and in bfloat16. Then, with the chosen face mode:
(a) finds the faces and runs the chain over the images in chunks, with no queue and no database (the same
    extraction pool and overlap the workers use), with the chain on XNNPACK (the default) and on TensorFlow.
(b) starts a private redis-server and PostgreSQL database and one `annotate worker`, then times
    `annotate submit` (walk, hash, record, enqueue) until the job is finished in the database.
Both use the same untrained chain (the cost does not depend on the weights) and are warmed up first.

--ceiling replaces inference with nothing: the data path alone (what a worker sees with an infinitely fast GPU),
in both face modes, with 1, 2, ... N extraction workers as threads and as processes; each rate and its ratio to
one worker of its kind.
--submit times `annotate submit ./photos --wait` as a new user runs it (no broker, default face mode, a home
each time as a first job left it) with the defaults, with ANNOTATE_DECODE_WORKERS=1 and with
ANNOTATE_CHAIN_ENGINE=tensorflow, twice each, alternating, each with the CPU-seconds the whole machine spent
meanwhile; --against DIR adds the defaults on the code of the checkout DIR.
--start starts N detection workers (one per CPU) forked by the pool's fork server, then spawned one by one as the
pool did before it, and prints the seconds and machine-wide CPU-seconds until they have searched their first
photos and the memory (PSS) of every process they added, with the ratios.
--exit times the exit of a process that imported TensorFlow and Keras, as annotate leaves it (every object frozen
at exit, so the interpreter's last collections skip them) and without that, alternating.

Images: ../shared/data/utkface-adults when present (real 200x200 JPEG faces), generated portraits otherwise.
(b) needs redis-server on PATH and PostgreSQL at ANNOTATE_TEST_POSTGRES_URL (default postgres@127.0.0.1/test).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from annotator.faces.modes import FaceOptions
    from db.models import ModelVersion

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL_FACES = ROOT.parent / "shared" / "data" / "utkface-adults" / "images"
ADMIN_URL = os.environ.get("ANNOTATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ANNOTATE = str(Path(sys.executable).with_name("annotate"))


def prepare_images(folder: Path, count: int) -> str:
    """Copy real faces (or write generated portraits) into ``folder``; returns what they are."""
    from annotator.images.portraits import write_portrait_folder

    folder.mkdir(parents=True)
    real = sorted(REAL_FACES.rglob("*.jpg"))[:count] if REAL_FACES.exists() else []
    if len(real) == count:
        for index, path in enumerate(real):
            shutil.copy(path, folder / f"{index:06d}.jpg")
        return f"{count} real faces from {REAL_FACES.parent.name}"
    write_portrait_folder(folder, count, seed=3)
    return f"{count} generated portraits"


def mirrored_copies(paths: list[Path], folder: Path) -> Path:
    """Mirror images into ``folder``: faces like the measured ones, but new content (not skipped as done)."""
    from PIL import Image

    folder.mkdir()
    for path in paths:
        with Image.open(path) as image:
            image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / f"mirror_{path.stem}.png")
    return folder


def register_chain(home: Path, database_url: str) -> None:
    """Register an untrained chain in the database at ``database_url``."""
    from annotator.models.architectures import build_model
    from annotator.models.specs import chain_order
    from annotator.models.store import register_model
    from db.migrate import upgrade
    from db.session import make_engine, make_session_factory, transaction

    engine = make_engine(database_url)
    upgrade(engine)
    with transaction(make_session_factory(engine)) as session:
        for spec in chain_order():
            register_model(session, home, spec, build_model(spec), metrics={"benchmark": True})
    engine.dispose()


def _chain(database_url: str) -> list[ModelVersion]:
    from annotator.models.store import active_chain_versions
    from db.session import make_engine, make_session_factory

    with make_session_factory(make_engine(database_url))() as session:
        versions = active_chain_versions(session)
        session.expunge_all()
        return versions


def _chain_ms(chain: list, faces: np.ndarray, *, xnnpack: bool = True) -> tuple[float, float]:  # type: ignore[type-arg]
    """Wall and CPU milliseconds a face of the chain, on XNNPACK where it applies or on TensorFlow alone, in the
    batches the pipeline runs."""
    from annotator.jobs.pipeline import OVERLAP_BATCH
    from annotator.models.graph import ChainGraph

    graph = ChainGraph([model.member for model in chain], xnnpack=xnnpack)

    def run() -> None:
        for start in range(0, len(faces), OVERLAP_BATCH):
            graph(faces[start : start + OVERLAP_BATCH])

    run()  # warm-up: trace the function, convert it for XNNPACK, prepare each batch size
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return ((time.perf_counter() - wall) / len(faces) * 1000, (time.process_time() - cpu) / len(faces) * 1000)


def stage_costs(paths: list[Path], versions: list[ModelVersion], home: Path) -> dict[str, Any]:
    """Milliseconds per image of each stage, run one after the other in this process (no overlap)."""
    from unittest import mock

    from annotator.faces import detection
    from annotator.faces.extraction import ImageToExtract, extract_faces
    from annotator.faces.modes import ALIGNED_FACES, DETECTED_FACES
    from annotator.models.chain import load_chain

    def per_image(options: FaceOptions) -> tuple[float, list[np.ndarray]]:
        started = time.perf_counter()
        faces = [f.pixels for p in paths for f in extract_faces(ImageToExtract(p), options, max_pixels=10**9)]
        return (time.perf_counter() - started) / len(paths) * 1000, faces

    def detect_ms_on_tensorflow() -> float:
        with mock.patch.object(detection, "_detector", None), mock.patch.object(detection, "xnnpack_stages",
                                                                               lambda *args: None):
            extract_faces(ImageToExtract(paths[0]), DETECTED_FACES, max_pixels=10**9)  # warm-up: build, trace
            return per_image(DETECTED_FACES)[0]

    extract_faces(ImageToExtract(paths[0]), DETECTED_FACES, max_pixels=10**9)  # warm-up: load the detector
    aligned_ms, faces = per_image(ALIGNED_FACES)
    detect_ms, detected = per_image(DETECTED_FACES)
    batch = np.stack(faces)
    return {"decode": aligned_ms, "detect": detect_ms, "detect_tensorflow": detect_ms_on_tensorflow(),
            "faces_per_image": len(detected) / len(paths),
            "chain": _chain_ms(load_chain(versions, home), batch),
            "chain_tensorflow": _chain_ms(load_chain(versions, home), batch, xnnpack=False),
            "chain_bfloat16": _chain_ms(load_chain(versions, home, precision="bfloat16"), batch)}


def in_process_rate(folder: Path, chunk_size: int, versions: list[ModelVersion], home: Path,
                    options: FaceOptions, engine: str) -> float:
    """(a) images/s of finding faces + chain (on ``engine``) over every image, in chunks, nothing else."""
    from annotator.faces.extraction import ImageToExtract
    from annotator.faces.pool import extract_images
    from annotator.jobs.pipeline import FaceBatches
    from annotator.settings import default_decode_workers

    paths = sorted(folder.iterdir())

    def run(chunk: list[Path]) -> None:
        batches = FaceBatches(versions, home, engine=engine)
        images = extract_images([ImageToExtract(p) for p in chunk], options, max_pixels=10**9,
                                workers=default_decode_workers())
        for owner, extracted in enumerate(images):
            for face in extracted.faces:
                batches.add(owner, face)
        batches.outputs()

    run(paths[:chunk_size])  # warm-up: load the models, trace the functions, start the extraction workers
    started = time.perf_counter()
    for start in range(0, len(paths), chunk_size):
        run(paths[start : start + chunk_size])
    return len(paths) / (time.perf_counter() - started)


def ceiling(folder: Path) -> None:
    """Print the data path's images/s with no inference, per face mode, pool kind and number of workers."""
    from annotator.faces.extraction import ImageToExtract
    from annotator.faces.modes import ALIGNED_FACES, DETECTED_FACES
    from annotator.faces.pool import ExtractionPool, uses_processes

    items = [ImageToExtract(p) for p in sorted(folder.iterdir())]
    most = os.cpu_count() or 1
    print(f"data path alone (no inference), {len(items)} images, {most} CPUs; ratio to one worker of its kind")
    for options in (DETECTED_FACES, ALIGNED_FACES):
        for processes in (False, True):
            kind = "processes" if processes else "threads"
            chosen = " (the default)" if processes == uses_processes(options.mode) else ""
            first = None
            for workers in range(1, most + 1):
                pool = ExtractionPool(workers, processes=processes)
                try:
                    for _ in pool.map(items[: 4 * workers], options, max_pixels=10**9):
                        pass  # warm-up: start the workers, trace the detector
                    started = time.perf_counter()
                    for _ in pool.map(items, options, max_pixels=10**9):
                        pass
                    rate = len(items) / (time.perf_counter() - started)
                finally:
                    pool.close()
                first = first or rate
                print(f"  --faces {options.mode.value:7s} {kind:9s}{chosen:14s} {workers:2d} workers: "
                      f"{rate:7.1f} images/s  {rate / first:4.2f}x")


def _descendants() -> list[int]:
    """Process ids of every process below this one (the fork server's children included)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [os.getpid()]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _pss_mb(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")) / 1024
    return total


def _busy_cpu_seconds() -> float:
    """CPU time this machine has spent busy since boot (every process's, not only ours)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")


def worker_start(folder: Path) -> None:
    """Print how long N detection workers take to start and how much memory they hold, fork server vs spawn."""
    import contextlib
    import multiprocessing
    from unittest import mock

    import annotator.faces.pool as pool_module
    from annotator.faces.extraction import ImageToExtract
    from annotator.faces.modes import DETECTED_FACES

    workers = os.cpu_count() or 1
    items = [ImageToExtract(p) for p in sorted(folder.iterdir())[: 2 * workers]]
    spawned = mock.patch.object(pool_module, "_process_context", lambda: multiprocessing.get_context("spawn"))
    figures = {}
    for name, started_by in (("fork server", contextlib.nullcontext()), ("spawned", spawned)):
        with started_by:
            before = set(_descendants())
            pool = pool_module.ExtractionPool(workers, processes=True)
            started, busy = time.perf_counter(), _busy_cpu_seconds()
            for _ in pool.map(items, DETECTED_FACES, max_pixels=10**9):
                pass
            seconds, cpu = time.perf_counter() - started, _busy_cpu_seconds() - busy
            memory = _pss_mb([pid for pid in _descendants() if pid not in before])
            pool.close()
        figures[name] = seconds, cpu, memory
        print(f"{workers} detection workers, {name:11s}: through their first {len(items)} photos in {seconds:5.1f} s "
              f"({cpu:5.1f} CPU-seconds, machine-wide); PSS of the processes they added {memory:6.0f} MB")
    (fork_s, fork_cpu, fork_mb), (spawn_s, spawn_cpu, spawn_mb) = figures["fork server"], figures["spawned"]
    print(f"fork server against spawned: {spawn_s / fork_s:.2f}x the speed, {spawn_cpu / fork_cpu:.2f}x less CPU, "
          f"{spawn_mb / fork_mb:.2f}x less memory")


SUBMIT_SETTINGS = {"default": {}, "ANNOTATE_DECODE_WORKERS=1": {"ANNOTATE_DECODE_WORKERS": "1"},
                   "ANNOTATE_CHAIN_ENGINE=tensorflow": {"ANNOTATE_CHAIN_ENGINE": "tensorflow"}}


def submit_times(folder: Path, scratch: Path, against: Path | None = None, rounds: int = 2) -> None:
    """Print the seconds of `annotate submit FOLDER --wait` (eager, default face mode) with each of
    :data:`SUBMIT_SETTINGS`, and with the defaults on the code of the checkout ``against``; each with the CPU
    time the whole machine spent meanwhile."""
    from annotator.settings import default_decode_workers

    settings = dict(SUBMIT_SETTINGS)
    if against is not None:
        settings[f"the code of {against}"] = {"PYTHONPATH": str(against.resolve())}
    # What a user's every job after the first finds in the home: the chain and MTCNN's networks converted for
    # XNNPACK (by each code compared), the models registered and a first job recorded.
    warm = scratch / "warm-home"
    warm.mkdir()
    register_chain(warm, f"sqlite:///{warm / 'annotate.db'}")
    codes = [{}] + ([settings[f"the code of {against}"]] if against is not None else [])
    for index, changes in enumerate(codes):  # four new photos each, so that each code detects faces
        warm_up = mirrored_copies(sorted(folder.iterdir())[4 * index:4 * index + 4], scratch / f"warm-up-{index}")
        subprocess.run([ANNOTATE, "submit", str(warm_up), "--wait"], cwd=scratch,
                       env={**os.environ, "ANNOTATE_HOME": str(warm), **changes}, check=True, capture_output=True)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in settings}
    for run in range(rounds):
        for index, (label, changes) in enumerate(settings.items()):
            home = scratch / f"home-{run}-{index}"
            shutil.copytree(warm, home)
            env = {key: value for key, value in os.environ.items() if not key.startswith("ANNOTATE_")}
            env.update(ANNOTATE_HOME=str(home), **changes)
            started, busy = time.perf_counter(), _busy_cpu_seconds()
            # Run outside any checkout: the extraction processes put their working folder first on their path.
            subprocess.run([ANNOTATE, "submit", str(folder), "--wait"], cwd=scratch, env=env, check=True,
                           capture_output=True, timeout=3600)
            times[label].append((time.perf_counter() - started, _busy_cpu_seconds() - busy))
    count = sum(1 for _ in folder.iterdir())
    for label, figures in times.items():
        name = f"default ({default_decode_workers()} workers)" if label == "default" else label
        print(f"`annotate submit` of {count} images, {name:33s}: "
              + ", ".join(f"{s:.1f} s ({count / s:.1f} images/s, {cpu:.1f} CPU-s)" for s, cpu in figures))
    default = sum(s for s, _ in times["default"])
    print(f"default is {sum(s for s, _ in times['ANNOTATE_DECODE_WORKERS=1']) / default:.2f}x faster than one "
          f"extraction worker, {sum(s for s, _ in times['ANNOTATE_CHAIN_ENGINE=tensorflow']) / default:.2f}x "
          "faster than the chain on TensorFlow"
          + "".join(f", {sum(s for s, _ in times[label]) / default:.2f}x faster than {label}"
                    for label in settings if label not in SUBMIT_SETTINGS))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"redis-server did not start on port {port}") from None
            time.sleep(0.05)


def service_rate(folder: Path, warmup: Path, chunk_size: int, env: dict[str, str], log: Path, faces: str) -> float:
    """(b) images/s from `annotate submit` to the job finished, with one worker on Redis + PostgreSQL."""
    worker = subprocess.Popen([ANNOTATE, "worker", "--loglevel", "warning", *os.environ.get("BENCH_WORKER", "").split()], env=env, stdout=log.open("wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        submit = [ANNOTATE, "submit", "--faces", faces, "--wait", "--chunk-size", str(chunk_size)]
        subprocess.run([*submit, str(warmup)], env=env, check=True, capture_output=True, timeout=1800)
        started = time.perf_counter()
        subprocess.run([*submit, str(folder)], env=env, check=True, capture_output=True, timeout=3600)
        return sum(1 for _ in folder.iterdir()) / (time.perf_counter() - started)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def service_vs_in_process(scratch_path: Path, args: argparse.Namespace) -> None:
    """Measure (a) and (b) and print their rates and ratio, after the stage costs."""
    import psycopg

    from annotator.faces.modes import FaceMode, FaceOptions

    options = FaceOptions(FaceMode(args.faces))
    # Both sides warm up on one full chunk, so neither pays TensorFlow's first-call cost in the timing.
    warmup = mirrored_copies(sorted((scratch_path / "images").iterdir())[: args.chunk_size], scratch_path / "warmup")
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    name = f"annotate_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    try:
        wait_for_port(port)
        home = scratch_path / "home"
        register_chain(home, database_url)
        env = {**os.environ, "ANNOTATE_HOME": str(home), "ANNOTATE_DATABASE_URL": database_url,
               "ANNOTATE_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
        versions = _chain(database_url)
        costs = stage_costs(sorted((scratch_path / "images").iterdir())[:200], versions, home)
        plain, on_tensorflow = (in_process_rate(scratch_path / "images", args.chunk_size, versions, home, options,
                                                engine) for engine in ("xnnpack", "tensorflow"))
        service = service_rate(scratch_path / "images", warmup, args.chunk_size, env,
                               scratch_path / "worker.log", args.faces)
    finally:
        redis.terminate()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"per image: decode {costs['decode']:.1f} ms (--faces aligned); decode + detect + align "
          f"{costs['detect']:.1f} ms (--faces detect, {costs['faces_per_image']:.2f} faces per image), MTCNN on "
          f"XNNPACK (the default); with MTCNN on TensorFlow {costs['detect_tensorflow']:.1f} ms "
          f"({costs['detect_tensorflow'] / costs['detect']:.2f}x)")
    (tf_wall, tf_cpu), (wall, cpu), (bf16_wall, bf16_cpu) = (
        costs["chain_tensorflow"], costs["chain"], costs["chain_bfloat16"])
    print(f"chain per face, wall / CPU ms: float32 on TensorFlow {tf_wall:.2f} / {tf_cpu:.2f}; float32 on XNNPACK "
          f"(the default) {wall:.2f} / {cpu:.2f} ({tf_wall / wall:.2f}x / {tf_cpu / cpu:.2f}x less); bfloat16 "
          f"{bf16_wall:.2f} / {bf16_cpu:.2f} ({tf_wall / bf16_wall:.2f}x / {tf_cpu / bf16_cpu:.2f}x less)")
    print(f"face mode of (a) and (b): {args.faces}")
    print(f"(a) in-process pipeline, no queue, no database: {plain:8.1f} images/s "
          f"(with the chain on TensorFlow {on_tensorflow:.1f}: XNNPACK {plain / on_tensorflow:.2f}x faster)")
    print(f"(b) full service: Redis + 1 worker + PostgreSQL: {service:8.1f} images/s")
    print(f"ratio b/a: {service / plain:.2f}")


EXIT_PROBE = """
import atexit, gc, sys, time
from annotator.tf_runtime import import_tensorflow
import_tensorflow()
import keras  # what a command that loads models imports
if sys.argv[1] == "collect":
    atexit.unregister(gc.freeze)
print(time.time(), flush=True)
"""


def exit_times(rounds: int = 3) -> None:
    """Print the seconds a process that imported TensorFlow takes to exit, as annotate leaves it (its objects
    frozen at exit) and with the interpreter's last collections, alternating."""
    seconds: dict[str, list[float]] = {"frozen": [], "collect": []}
    for _ in range(rounds):
        for how, times in seconds.items():
            result = subprocess.run([sys.executable, "-c", EXIT_PROBE, how], check=True, capture_output=True,
                                    text=True, cwd=ROOT, timeout=300)
            times.append(time.time() - float(result.stdout.split()[-1]))
    for how, times in seconds.items():
        label = "objects frozen at exit (annotate)" if how == "frozen" else "last collections (plain Python)"
        print(f"exit after importing TensorFlow, {label:33s}: " + ", ".join(f"{s:.2f} s" for s in times))
    print(f"exit is {sum(seconds['collect']) / sum(seconds['frozen']):.1f}x faster, "
          f"{(sum(seconds['collect']) - sum(seconds['frozen'])) / rounds:.2f} s less a command")


def main() -> None:
    """Run the chosen measurement."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help="3000, or 500 with --ceiling, 1000 with --submit")
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--faces", choices=["aligned", "detect"], default="aligned",
                        help="face mode of (a) and (b); the stage costs always show both")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--ceiling", action="store_true", help="the data path alone, by workers, kind and face mode")
    mode.add_argument("--submit", action="store_true", help="`annotate submit --wait`: default vs one worker")
    mode.add_argument("--start", action="store_true", help="detection workers' start and memory: fork server vs spawn")
    mode.add_argument("--exit", action="store_true", help="a process's exit after importing TensorFlow")
    parser.add_argument("--against", type=Path, default=None,
                        help="with --submit: also time the defaults on the code of this checkout (e.g. a `git "
                             "worktree` of the previous commit), alternating with the others")
    args = parser.parse_args()
    if args.exit:
        exit_times()
        return
    count = args.images or (500 if args.ceiling else 1000 if args.submit else 100 if args.start else 3000)
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        what = prepare_images(scratch_path / "images", count)
        print(f"images: {what}, chunk size {args.chunk_size}, {os.cpu_count()} CPUs")
        if args.ceiling:
            ceiling(scratch_path / "images")
        elif args.submit:
            submit_times(scratch_path / "images", scratch_path, args.against)
        elif args.start:
            worker_start(scratch_path / "images")
        else:
            service_vs_in_process(scratch_path, args)


if __name__ == "__main__":
    main()
