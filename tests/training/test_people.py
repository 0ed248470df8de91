"""`annotate train --group-by person`: one person's faces form one group, and the command records it."""

import csv

import pytest
from click.testing import CliRunner
from PIL import Image

from annotator.cli import main
from annotator.errors import TrainingDataError
from annotator.models.specs import get_spec
from annotator.models.store import list_versions
from annotator.training.datasets import load_training_set
from annotator.training.people import with_person_groups
from tests.photos import ASTRONAUT_FACE, astronaut

pytest.importorskip("dlib")


@pytest.fixture
def people_set(tmp_path):
    """Four crops of the astronaut's face, two of the cameraman's and 16 small faces of other people."""
    face = astronaut().crop(ASTRONAUT_FACE)
    (tmp_path / "set").mkdir()
    names = []
    for number, margin in enumerate((0, 6, 12, 18)):
        name = f"astronaut_{number}.jpg"
        face.crop((margin, margin, face.width - margin, face.height - margin)).save(tmp_path / "set" / name)
        names.append((name, "female"))
    from skimage import data

    cameraman = Image.fromarray(data.camera()).convert("RGB").crop((160, 50, 300, 220))
    for number, margin in enumerate((0, 8)):  # another person, so a split has people to put on each side
        name = f"cameraman_{number}.jpg"
        cameraman.crop((margin, margin, cameraman.width - margin, cameraman.height - margin)).save(
            tmp_path / "set" / name)
        names.append((name, "male"))
    for index, pixels in enumerate(data.lfw_subset()[:16]):  # 25x25 grey faces of 16 other people
        name = f"lfw_{index}.png"
        Image.fromarray((pixels * 255).astype("uint8")).convert("RGB").save(tmp_path / "set" / name)
        names.append((name, "male" if index % 2 else "female"))
    with (tmp_path / "set" / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label"), *names])
    return tmp_path / "set" / "labels.csv"


def test_crops_of_one_face_are_one_person_and_never_join_other_people(people_set):
    data = load_training_set(people_set, get_spec("gender"))
    grouped = with_person_groups(data, crop_level=False, echo=lambda line: None)
    astronaut_groups = set(grouped.groups[:4])
    assert len(astronaut_groups) == 1
    assert astronaut_groups.isdisjoint(set(grouped.groups[4:]))
    assert len(set(grouped.groups)) >= 15  # the astronaut, the cameraman (one or two), most small faces alone
    with pytest.raises(TrainingDataError, match="needs whole aligned faces"):
        with_person_groups(data, crop_level=True, echo=lambda line: None)


def test_train_group_by_person_says_so_and_records_it(settings, factory, people_set):
    result = CliRunner().invoke(main, ["train", "gender", "--data", str(people_set), "--group-by", "person",
                                       "--epochs", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "validation: 10% held out, test 15% held out (never used to pick the epoch), whole people" in result.output
    with factory() as session:
        assert list_versions(session)[-1].metrics["group_by"] == "person"
    result = CliRunner().invoke(main, ["train", "gender", "--data", str(people_set), "--group-by", "person",
                                       "--group-column", "label"])
    assert result.exit_code != 0 and "choose one" in result.output
