"""The model store keeps working when its home moves: files under the home are recorded relative to it."""

import shutil

from click.testing import CliRunner
from sqlalchemy import select

from annotator.cli import main
from annotator.models import chain as chain_module
from annotator.models.store import stored_path
from db.models import ModelVersion
from tests.conftest import write_faces


def test_files_under_the_home_are_recorded_relative_to_it_and_others_absolute(tmp_path):
    home = tmp_path / "home"
    assert stored_path(home / "models" / "eyes" / "eyes-v1.keras", home) == "models/eyes/eyes-v1.keras"
    outside = tmp_path / "elsewhere" / "eyes.keras"
    assert stored_path(outside, home) == str(outside)


def test_a_moved_home_still_annotates(settings, factory, untrained_chain, tmp_path, monkeypatch):
    with factory() as session:
        paths = session.scalars(select(ModelVersion.path)).all()
    assert paths and all(path.startswith("models/") for path in paths)
    moved = tmp_path / "restored"
    shutil.move(settings.home, moved)
    monkeypatch.setenv("ANNOTATE_HOME", str(moved))
    monkeypatch.setattr(chain_module, "_models", chain_module._Recent())  # load from the files, as a new process would
    write_faces(tmp_path / "photos", 3)
    result = CliRunner().invoke(main, ["submit", str(tmp_path / "photos"), "--faces", "aligned"])
    assert result.exit_code == 0, result.output
    assert "done 3 " in result.output and not settings.home.exists()
