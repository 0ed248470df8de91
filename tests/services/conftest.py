"""Real services: a private Redis on a free loopback port, a private PostgreSQL cluster, worker processes.

Everything runs with the default settings: no visibility timeout, lease or heartbeat is tuned for the tests.
Skipped when the servers are missing on a developer machine; in CI (``CI=true``) a missing server fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

ANNOTATE = str(Path(sys.executable).with_name("annotate"))
POSTGRES_BIN = Path(os.environ.get("ANNOTATE_TEST_POSTGRES_BIN", "/usr/local/bin"))


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must exercise the real services."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, seconds: float) -> bool:
    """True once something accepts connections on ``port``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class RedisServer:
    """A private redis-server without persistence: killed and started again, it comes back empty."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on its port and wait until it accepts connections."""
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port, 10):
            self.kill()
            unavailable("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL the server: its queues are gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server for this test."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed")
    server = RedisServer(binary, tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of this test's private Redis."""
    return redis_server.url


class PostgresCluster:
    """A private PostgreSQL cluster (initdb + pg_ctl) on a free loopback port, run as ``postgres`` under root."""

    def __init__(self, root: Path) -> None:
        self.root, self.data, self.port = root, root / "data", free_port()
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       cwd=self.root)

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(POSTGRES_BIN / "pg_ctl"), action, "-D", str(self.data), "-w", "-l", str(self.root / "log"),
                  "-o", options, *extra)

    def init(self) -> None:
        """Create the cluster and start it."""
        if self.user:
            shutil.chown(self.root, self.user)
        self._run(str(POSTGRES_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")
        self._pg_ctl("start")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is closed, open transactions roll back."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        """Stop the server."""
        self._pg_ctl("stop", "-m", "immediate")

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        """A URL of ``database`` on this cluster."""
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One private PostgreSQL cluster for the session; each test gets its own database in it."""
    if not (POSTGRES_BIN / "initdb").exists() or not (POSTGRES_BIN / "pg_ctl").exists():
        unavailable(f"initdb and pg_ctl are not in {POSTGRES_BIN} (ANNOTATE_TEST_POSTGRES_BIN)")
    root = Path(tempfile.mkdtemp(prefix="annotate-pg-"))
    cluster = PostgresCluster(root)
    try:
        cluster.init()
    except (subprocess.CalledProcessError, KeyError, LookupError) as error:
        detail = getattr(error, "stderr", b"") or b""
        unavailable(f"could not start a private PostgreSQL cluster: {error} {detail.decode(errors='replace')}")
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A freshly created database of the private cluster, dropped afterwards."""
    import psycopg

    name = f"annotate_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_cluster.url(name, driver="postgresql+psycopg")
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def service_env(tmp_path: Path, redis_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a distributed deployment with default settings; also applied to this process."""
    values = {
        "ANNOTATE_HOME": str(tmp_path / "home"),
        "ANNOTATE_DATABASE_URL": postgres_url,
        "ANNOTATE_BROKER_URL": redis_url,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **values}


class Workers:
    """Worker subprocesses started by a test; every one is stopped at teardown."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *names: str) -> list[subprocess.Popen[bytes]]:
        """Start one ``annotate worker`` per name (in parallel) and wait until each consumes."""
        for name in names:
            log = self.logs / f"{name}.log"
            self.processes[name] = subprocess.Popen(
                [ANNOTATE, "worker", "--hostname", f"{name}@%h", "--loglevel", "info"], env=self.env,
                stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        for name in names:
            while "ready." not in self.log(name):
                if self.processes[name].poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"worker {name} did not start:\n{self.log(name)}")
                time.sleep(0.1)
        return [self.processes[name] for name in names]

    def signal(self, name: str, number: int) -> None:
        """Send signal ``number`` to worker ``name`` (its whole process group)."""
        os.killpg(self.processes[name].pid, number)

    def log(self, name: str) -> str:
        """What worker ``name`` printed."""
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        """Stop every worker, forcibly if it does not stop in time."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def workers(service_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    """Start and clean up real worker processes."""
    group = Workers(service_env, tmp_path)
    yield group
    group.stop_all()


@pytest.fixture
def factory(service_env: dict[str, str]) -> Iterator[sessionmaker[Session]]:
    """The test database, migrated, with an untrained chain registered and active."""
    from annotator.settings import Settings
    from db.migrate import upgrade
    from db.session import make_engine, make_session_factory
    from tests.conftest import register_untrained_chain

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    register_untrained_chain(factory, settings)
    yield factory
    engine.dispose()


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``photos(count, side)``: a folder of that many random PNGs, written once per session and shared."""
    from tests.services.helpers import write_photos

    folders: dict[tuple[int, int], Path] = {}

    def folder(count: int, side: int = 120) -> Path:
        if (count, side) not in folders:
            folders[(count, side)] = tmp_path_factory.mktemp(f"photos-{count}-{side}")
            write_photos(folders[(count, side)], count, side=side)
        return folders[(count, side)]

    return folder
