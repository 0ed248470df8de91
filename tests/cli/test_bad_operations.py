"""Submitting with the database or the broker out of reach, or the disk full: one line, quickly, and nothing lost."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from annotator.cli import main
from db.models import Job, JobImage
from db.session import make_engine, make_session_factory
from tests.services.helpers import assert_exactly_once, write_photos


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_an_unreachable_database_is_one_line_within_seconds(tmp_path, monkeypatch):
    write_photos(tmp_path / "photos", 3)
    monkeypatch.setenv("ANNOTATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ANNOTATE_DATABASE_URL", f"postgresql+psycopg://annotate@127.0.0.1:{closed_port()}/annotate")
    monkeypatch.delenv("ANNOTATE_BROKER_URL", raising=False)
    started = time.monotonic()
    line = one_line_error(CliRunner().invoke(main, ["submit", str(tmp_path / "photos"), "--faces", "aligned"]))
    assert time.monotonic() - started < 15
    assert "Cannot reach the database" in line and "ANNOTATE_DATABASE_URL" in line


def test_an_unreachable_broker_is_one_line_within_seconds_and_records_nothing(tmp_path, monkeypatch):
    write_photos(tmp_path / "photos", 3)
    monkeypatch.setenv("ANNOTATE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ANNOTATE_DATABASE_URL", raising=False)
    monkeypatch.setenv("ANNOTATE_BROKER_URL", f"redis://127.0.0.1:{closed_port()}/0")
    started = time.monotonic()
    line = one_line_error(CliRunner().invoke(main, ["submit", str(tmp_path / "photos"), "--faces", "aligned"]))
    assert time.monotonic() - started < 15
    assert "Cannot reach the broker" in line and "ANNOTATE_BROKER_URL" in line
    engine = make_engine(f"sqlite:///{tmp_path / 'home' / 'annotate.db'}")
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
    engine.dispose()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def database_state(url: str) -> tuple[str | None, int, int]:
    """The job's status, its members and the images annotated, read from a fresh engine."""
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        statuses = session.scalars(select(Job.status)).all()
        members = session.scalar(select(func.count()).select_from(JobImage)) or 0
        done = session.scalar(select(func.count()).select_from(JobImage).where(JobImage.status == "done")) or 0
    engine.dispose()
    assert len(statuses) <= 1, statuses
    return (statuses[0] if statuses else None), members, done


def test_a_full_disk_is_one_line_and_the_same_submit_goes_on_once_there_is_room(tmp_path, small_disk, monkeypatch):
    from annotator.settings import Settings
    from db.migrate import upgrade
    from tests.conftest import register_untrained_chain

    url = f"sqlite:///{small_disk / 'annotate.db'}"
    monkeypatch.setenv("ANNOTATE_HOME", str(tmp_path / "home"))  # the models stay on the big disk
    monkeypatch.setenv("ANNOTATE_DATABASE_URL", url)
    monkeypatch.delenv("ANNOTATE_BROKER_URL", raising=False)
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    register_untrained_chain(factory, Settings.from_env())
    engine.dispose()
    folder = tmp_path / "photos"
    write_photos(folder, 1500, side=8)
    submit = ["submit", str(folder), "--faces", "aligned"]

    # 1,500 members take more rows than the 64 KB left free: the disk fills while the job is recorded.
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "filler").write_bytes(b"\0" * (free - 64 * 1024))
    line = one_line_error(CliRunner().invoke(main, submit))
    assert "disk" in line and "full" in line
    status, members, _ = database_state(url)
    assert status in (None, "interrupted") and members < 1500, (status, members)

    # With the whole 2 MB the job is recorded, and the disk fills while its faces are written.
    (small_disk / "filler").unlink()
    line = one_line_error(CliRunner().invoke(main, submit))
    assert "disk" in line and "full" in line
    status, members, done = database_state(url)
    assert (status, members) == ("interrupted", 1500) and done < 1500, (status, members, done)

    # Room again: the same submit finishes the same job, each image annotated once.
    subprocess.run(["mount", "-o", "remount,size=32m", str(small_disk)], check=True)
    result = CliRunner().invoke(main, submit)
    assert result.exit_code == 0, result.output
    assert "Resumed job 1: its submit was interrupted after recording all 1500 files." in result.output
    assert database_state(url) == ("finished", 1500, 1500)
    engine = make_engine(url)
    assert_exactly_once(make_session_factory(engine), 1500)
    engine.dispose()
