from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator.errors import TrainingDataError
from annotator.models.specs import GENDER, IDENTITY, MOUTH, get_spec
from annotator.training.datasets import load_training_set, parse_class_map, read_rows, resolve_csv
from tests.conftest import write_faces


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


@pytest.fixture
def faces(tmp_path: Path) -> list[str]:
    """Twelve decodable images under tmp_path/img; their paths relative to tmp_path."""
    return [f"img/{p.name}" for p in write_faces(tmp_path / "img", 12, size=90)]


def test_plain_csv_with_and_without_header(tmp_path, faces):
    body = "\n".join(f"{path},{i % 3 / 2}" for i, path in enumerate(faces))
    with_header = read_rows(write_csv(tmp_path / "a.csv", "path,label\n" + body), MOUTH)
    without = read_rows(write_csv(tmp_path / "b.csv", body), MOUTH)
    for rows in (with_header, without):
        assert rows.layout == "path,label" and rows.label_column == "label"
        assert rows.paths[0] == tmp_path / faces[0] and list(rows.labels[:3]) == [0.0, 0.5, 1.0]
        assert rows.gender is None


def test_folder_with_manifest_and_extra_columns(tmp_path, faces):
    write_csv(tmp_path / "manifest.csv", "path,label,age,race\n"
              + "\n".join(f"{p},{'male' if i % 2 else 'FEMALE'},30,{i % 4}" for i, p in enumerate(faces)))
    assert resolve_csv(tmp_path) == tmp_path / "manifest.csv"
    rows = read_rows(resolve_csv(tmp_path), GENDER, group_column="race")
    assert rows.layout == "manifest" and list(rows.labels[:2]) == [1.0, 0.0]
    assert list(rows.groups[:3]) == ["0", "1", "2"]


def test_export_layout_picks_the_model_column_and_gender(tmp_path, faces):
    header = ("path,sha256,face_index,male_prob,female_prob,eyes,mouth,background_mean,gender_version,"
              "eyes_version,mouth_version,background_mean_version")
    lines = [f"{p},{'ab' * 32},0,{1 - f},{f},1.0,{m},0.5,gender@1,eyes@1,mouth@1,background_mean@1"
             for p, f, m in zip(faces, [0.9, 0.2, 0.6] * 4, [0.0, 0.5, 1.0, ""] * 3)]
    path = write_csv(tmp_path / "labels.csv", header + "\n" + "\n".join(lines))
    mouth = read_rows(path, MOUTH)
    assert mouth.layout == "export" and mouth.label_column == "mouth"
    assert mouth.unlabelled == 3 and len(mouth.labels) == 9  # the empty mouth cells
    assert list(mouth.gender[:3]) == [1, 0, 1]  # female_prob >= 0.5 is female
    gender = read_rows(path, GENDER)
    assert gender.label_column == "female_prob" and list(gender.labels[:3]) == [1.0, 0.0, 1.0]
    eyes = read_rows(path, get_spec("eyes"), label_column="background_mean")
    assert set(eyes.labels) == {0.5}


def test_class_map_names_labels():
    assert parse_class_map("mouth_open=1, mouth_closed=0") == {"mouth_open": 1.0, "mouth_closed": 0.0}
    for bad in ("open", "open=2", "=1", "open=x"):
        with pytest.raises(TrainingDataError, match="NAME=VALUE"):
            parse_class_map(bad)


def test_class_map_applies_to_labels(tmp_path, faces):
    path = write_csv(tmp_path / "m.csv", "path,label\n" + "\n".join(
        f"{p},{'mouth_open' if i % 2 else 'mouth_closed'}" for i, p in enumerate(faces)))
    rows = read_rows(path, MOUTH, class_map=parse_class_map("mouth_open=1,mouth_closed=0"))
    assert list(rows.labels[:2]) == [0.0, 1.0]
    with pytest.raises(TrainingDataError, match=r"line 2: mouth labels are numbers in 0..1.*'mouth_closed'"):
        read_rows(path, MOUTH)


@pytest.mark.parametrize("spec, text, message", [
    (GENDER, "path,label\nimg/a.png,person", "gender labels are male or female"),
    (MOUTH, "path,label\nimg/a.png,1.5", "numbers in 0..1"),
    (IDENTITY, "path,label\nimg/a.png,0.5", "1 .the person. or 0"),
    (MOUTH, "path,label\nimg/a.png,0.5,extra", "expected 2 columns"),
    (MOUTH, "path,label\n,0.5", "the path is empty"),
    (MOUTH, "path,score\nimg/a.png,0.5", "no 'label' or 'mouth' column"),
])
def test_malformed_rows_are_refused_with_their_line(tmp_path, spec, text, message):
    with pytest.raises(TrainingDataError, match=message):
        read_rows(write_csv(tmp_path / "bad.csv", text), spec)


def test_missing_sources_and_columns_are_refused(tmp_path, faces):
    with pytest.raises(TrainingDataError, match="not found"):
        resolve_csv(tmp_path / "nowhere.csv")
    with pytest.raises(TrainingDataError, match="has no manifest.csv"):
        resolve_csv(tmp_path / "img")
    with pytest.raises(TrainingDataError, match="is empty"):
        read_rows(write_csv(tmp_path / "empty.csv", " "), MOUTH)
    path = write_csv(tmp_path / "ok.csv", f"path,label\n{faces[0]},1")
    with pytest.raises(TrainingDataError, match="no column 'person'"):
        read_rows(path, MOUTH, group_column="person")
    with pytest.raises(TrainingDataError, match="no column 'eyes'"):
        read_rows(path, MOUTH, label_column="eyes")
    with pytest.raises(TrainingDataError, match="no header row"):
        read_rows(write_csv(tmp_path / "bare.csv", f"{faces[0]},1"), MOUTH, label_column="label")


def test_undecodable_rows_are_skipped_and_counted(tmp_path, faces):
    (tmp_path / "img" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    path = write_csv(tmp_path / "d.csv", "path,label\n" + "\n".join(
        [f"{p},{i % 2}" for i, p in enumerate(faces)] + ["img/broken.jpg,1", "img/gone.png,0"]))
    data = load_training_set(path, MOUTH)
    assert data.images.shape == (12, 60, 60, 3) and len(data.labels) == 12
    assert [p for p, _ in data.skipped] == ["img/broken.jpg", "img/gone.png"]
    assert "unreadable" in data.skipped[1][1]


def test_too_few_rows_or_a_single_class_is_refused(tmp_path, faces):
    few = write_csv(tmp_path / "few.csv", "path,label\n" + "\n".join(f"{p},{i % 2}" for i, p in enumerate(faces[:5])))
    with pytest.raises(TrainingDataError, match="5 usable rows.*at least 10"):
        load_training_set(few, MOUTH)
    one = write_csv(tmp_path / "one.csv", "path,label\n" + "\n".join(f"{p},male" for p in faces))
    with pytest.raises(TrainingDataError, match="label male; gender needs examples of more than one class"):
        load_training_set(one, GENDER)


def test_crop_level_resizes_straight_to_the_input(tmp_path):
    (tmp_path / "img").mkdir()
    for i in range(10):  # ready-made eye crops of odd sizes: a bright left half
        pixels = np.zeros((40 + i, 70, 3), np.uint8)
        pixels[:, :35] = 255
        Image.fromarray(pixels).save(tmp_path / "img" / f"{i}.png")
    path = write_csv(tmp_path / "eyes.csv", "path,label\n" + "\n".join(f"img/{i}.png,{i % 2}" for i in range(10)))
    data = load_training_set(path, get_spec("eyes"), crop_level=True)
    assert data.images.shape == (10, 32, 60, 3)
    assert data.images[:, :, :25].min() > 0.99 and data.images[:, :, 35:].max() < 0.01
    assert data.gender is None  # a crop has no face to tell the gender from: neutral gender input


def test_face_level_cuts_the_spec_crop(tmp_path, faces):
    path = write_csv(tmp_path / "g.csv", "path,label\n" + "\n".join(
        f"{p},{'male' if i % 2 else 'female'}" for i, p in enumerate(faces)))
    assert load_training_set(path, GENDER).images.shape == (12, 60, 60, 3)
    assert load_training_set(path, IDENTITY, class_map={"male": 1, "female": 0}).images.shape == (12, 224, 224, 3)
