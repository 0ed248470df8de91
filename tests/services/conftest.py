"""Real services: a private Redis on a free loopback port, a private PostgreSQL database, worker processes.

Skipped when the servers are missing on a developer machine; in CI (``CI=true``) a missing server fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ADMIN_URL = os.environ.get("ANNOTATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ANNOTATE = str(Path(sys.executable).with_name("annotate"))


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must exercise the real services."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private redis-server for this test."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                unavailable("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A private, freshly created PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"annotate_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        unavailable(f"PostgreSQL is not reachable at {ADMIN_URL}: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def service_env(tmp_path: Path, redis_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a distributed deployment; also applied to this process for in-process submits."""
    values = {
        "ANNOTATE_HOME": str(tmp_path / "home"),
        "ANNOTATE_DATABASE_URL": postgres_url,
        "ANNOTATE_BROKER_URL": redis_url,
        # Short, so a task of a killed worker comes back within the test.
        "ANNOTATE_VISIBILITY_TIMEOUT": "8",
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
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``annotate worker`` and wait until it consumes."""
        log = self.logs / f"{name}.log"
        process = subprocess.Popen([ANNOTATE, "worker", "--hostname", f"{name}@%h", "--loglevel", "info"],
                                   env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while b"ready." not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker {name} did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        return process

    def log(self, name: str) -> str:
        """What worker ``name`` printed."""
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        """Stop every worker, forcibly if it does not stop in time."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def workers(service_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    """Start and clean up real worker processes."""
    group = Workers(service_env, tmp_path)
    yield group
    group.stop_all()
