import json

import pytest
from sqlalchemy import func, select

from annotator.errors import LabelFileError
from annotator.labels import importing as labels_import
from annotator.labels.exporting import label_studio_tasks
from annotator.labels.importing import import_labels
from db.models import Face, Image, Label
from db.session import transaction
from tests.conftest import fake_chain, record_annotations, write_faces


@pytest.fixture
def photos(factory, tmp_path):
    """Three aligned portraits recorded as annotated (no model runs): {file name: sha256}."""
    fake_chain(factory)
    return record_annotations(factory, write_faces(tmp_path / "photos", 3))


def import_file(factory, path, source=None):
    with transaction(factory) as session:
        return import_labels(session, path, source)


def stored(factory):
    with factory() as session:
        rows = session.execute(select(Image.path, Label.attribute, Label.source, Label.value)
                               .join(Face, Face.id == Label.face_id).join(Image, Image.id == Face.image_id))
        return {(path.rsplit("/", 1)[-1], attribute, source): value for path, attribute, source, value in rows}


def test_csv_rows_keyed_by_sha256_prefix_or_path(factory, photos, tmp_path):
    labels = tmp_path / "checked.csv"
    labels.write_text(
        "sha256,path,gender,eyes,mouth\n"
        f"{photos['face_000.png'][:10]},,female,1,\n"
        ",photos/face_001.png,0.25,,0.5\n"  # relative to the CSV's folder
        f",{tmp_path / 'photos' / 'face_002.png'},MALE,,\n"
        f"{photos['face_002.png']},,,,\n"  # nothing labelled: not a problem, not counted
    )
    result = import_file(factory, labels)
    assert result.summary() == "imported 5 labels for 3 faces, skipped 0 rows"
    assert stored(factory) == {
        ("face_000.png", "gender", "checked.csv"): 1.0, ("face_000.png", "eyes", "checked.csv"): 1.0,
        ("face_001.png", "gender", "checked.csv"): 0.25, ("face_001.png", "mouth", "checked.csv"): 0.5,
        ("face_002.png", "gender", "checked.csv"): 0.0,
    }


def test_bad_rows_are_reported_with_their_line_and_skipped(factory, photos, tmp_path):
    sha = photos["face_000.png"]
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "sha256,face_index,eyes,gender,hair_color\n"
        f"{sha},,0.5,,\n"  # line 2: fine
        f"{sha},,1.5,,\n"
        f"{sha},,,maybe,\n"
        f"{sha},,,,0.3\n"
        "ffffffffffff,,0.5,,\n"
        f"{sha},2,0.5,,\n"
        f"{sha[:3]},,0.5,,\n"
        f"{sha},one,0.5,,\n"
        f"{photos['face_001.png']},,1,,\n"  # line 10: fine
    )
    result = import_file(factory, labels, source="alice")
    assert result.summary() == "imported 2 labels for 2 faces, skipped 7 rows"
    assert result.problems == [
        "line 3: eyes must be in [0, 1]. Received: '1.5'",
        "line 4: gender must be male, female or a number in [0, 1]. Received: 'maybe'",
        "line 5: unknown attribute 'hair_color' (known: gender, eyes, mouth, background_mean, identity)",
        "line 6: no annotated image has a sha256 starting with ffffffffffff",
        "line 7: the image has no face 2 by aligned (it has faces 0 to 0)",
        "line 8: sha256 must be 6 to 64 hexadecimal characters. Received: '" + sha[:3] + "'",
        "line 9: face_index must be a whole number. Received: 'one'",
    ]
    assert stored(factory) == {("face_000.png", "eyes", "alice"): 0.5, ("face_001.png", "eyes", "alice"): 1.0}


def test_reimporting_a_file_updates_its_labels_instead_of_adding_rows(factory, photos, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text(f"sha256,eyes\n{photos['face_000.png']},0\n")
    import_file(factory, labels)
    import_file(factory, labels)
    labels.write_text(f"sha256,eyes\n{photos['face_000.png']},0.5\n")
    assert import_file(factory, labels).labels == 1
    import_file(factory, labels, source="bob")
    assert stored(factory) == {("face_000.png", "eyes", "labels.csv"): 0.5, ("face_000.png", "eyes", "bob"): 0.5}


def test_a_method_column_picks_among_faces_found_several_ways(factory, photos, tmp_path):
    with transaction(factory) as session:
        image_id = session.scalar(select(Image.id).where(Image.sha256 == photos["face_000.png"]))
        session.add(Face(image_id=image_id, method="mtcnn-32-0.90", index=0, box=[0, 0, 9, 9], score=0.99))
    labels = tmp_path / "labels.csv"
    labels.write_text(f"sha256,method,mouth\n{photos['face_000.png']},,1\n{photos['face_000.png']},aligned,1\n")
    result = import_file(factory, labels)
    assert result.problems == [("line 2: the image has faces found by several methods (aligned, mtcnn-32-0.90); "
                               "add a method column to say which")]
    assert result.labels == 1


def test_a_path_that_held_several_images_means_the_one_it_holds_now(factory, photos, tmp_path):
    first = tmp_path / "photos" / "face_000.png"
    write_faces(tmp_path / "other", 1, seed=3)[0].replace(first)  # edited in place, then submitted again
    record_annotations(factory, [first])
    labels = tmp_path / "labels.csv"
    labels.write_text("path,eyes\nphotos/face_000.png,1\n")
    assert import_file(factory, labels).labels == 1
    with factory() as session:
        labelled = session.scalar(select(Image.sha256).join(Face, Face.image_id == Image.id)
                                  .join(Label, Label.face_id == Face.id))
    assert labelled != photos["face_000.png"]
    first.unlink()
    result = import_file(factory, labels)
    assert result.problems == [f"line 2: {first} held several different images over time; give the sha256 instead"]


def test_nothing_is_written_when_the_import_fails_halfway(factory, photos, tmp_path, monkeypatch):
    labels = tmp_path / "labels.csv"
    labels.write_text("sha256,eyes\n" + "".join(f"{sha},1\n" for sha in photos.values()))
    calls = []

    def failing_upsert(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return upsert(*args, **kwargs)

    upsert = labels_import.upsert
    monkeypatch.setattr(labels_import, "QUERY_BATCH", 1)
    monkeypatch.setattr(labels_import, "upsert", failing_upsert)
    with pytest.raises(RuntimeError):
        import_file(factory, labels)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Label)) == 0


def test_files_that_cannot_be_read_are_one_error(factory, photos, tmp_path):
    with pytest.raises(LabelFileError, match="No labels file"):
        import_file(factory, tmp_path / "missing.csv")
    (tmp_path / "keys.csv").write_text("name,eyes\nx,1\n")
    with pytest.raises(LabelFileError, match="neither a sha256 nor a path column"):
        import_file(factory, tmp_path / "keys.csv")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(LabelFileError, match="Label Studio JSON"):
        import_file(factory, tmp_path / "broken.json")


def _annotated(task, annotations):
    return {**task, "id": task["data"]["face_index"] + 100, "annotations": annotations}


def test_label_studio_exports_import_the_newest_kept_annotation(factory, photos, tmp_path):
    with factory() as session:
        tasks = sorted(label_studio_tasks(session), key=lambda t: t["data"]["path"])
    choice = {"from_name": "eyes", "to_name": "image", "type": "choices"}
    done = [
        _annotated(tasks[0], [
            {"created_at": "2026-01-01T10:00:00Z", "result": [{**choice, "value": {"choices": ["0"]}}]},
            {"created_at": "2026-01-02T10:00:00Z", "result": [
                {**choice, "value": {"choices": ["0.5"]}},
                {"from_name": "gender", "to_name": "image", "type": "choices", "value": {"choices": ["female"]}},
                {"from_name": "mouth", "to_name": "image", "type": "number", "value": {"number": 0.8}}]},
            {"created_at": "2026-01-03T10:00:00Z", "was_cancelled": True,
             "result": [{**choice, "value": {"choices": ["1"]}}]},
        ]),
        _annotated(tasks[1], [{"result": [{"from_name": "smile", "to_name": "image", "type": "choices",
                                           "value": {"choices": ["1"]}}]}]),
        _annotated(tasks[2], [{"result": [{"from_name": "mouth", "to_name": "image", "type": "textarea",
                                           "value": {"text": ["open"]}}]}]),
        tasks[2],  # not labelled yet
    ]
    exported = tmp_path / "project-1.json"
    exported.write_text(json.dumps(done))
    result = import_file(factory, exported)
    assert result.problems == [
        "task 2 (id 100): unknown attribute 'smile' (known: gender, eyes, mouth, background_mean, identity)",
        "task 3 (id 100): unsupported result for 'mouth': type 'textarea' (choices or number expected)",
    ]
    assert stored(factory) == {("face_000.png", "eyes", "project-1.json"): 0.5,
                               ("face_000.png", "gender", "project-1.json"): 1.0,
                               ("face_000.png", "mouth", "project-1.json"): 0.8}
