"""Exports: every format round-trips, splits, filters, the manifest, and bad input through the CLI."""

import csv
import io
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.errors import ExportError, MissingExtraError
from annotator.exports.columns import csv_columns
from annotator.exports.formats.condition_data import CONDITION_DATA_COLUMNS
from annotator.exports.options import ExportOptions
from annotator.exports.run import run_export
from annotator.images.decoding import decode_face
from annotator.images.discovery import hash_file
from annotator.models.specs import chain_order
from db.models import Face, Image, Label, ModelVersion, Prediction
from db.session import transaction
from tests.conftest import write_faces

FACES = 20
# Face 0 is a hesitant male (0.55), face 1 a hesitant female (0.6); 8 of the 20 are female.
FEMALE_PROBS = [0.45 if i == 0 else 0.6 if i == 1 else 0.9 if i % 5 in (1, 3) else 0.1 for i in range(FACES)]
ALL_VERSIONS = ["background_mean@1", "eyes@1", "gender@1", "mouth@1"]


def add_image(session, path: Path) -> Image:
    sha256, size, fmt = hash_file(path)
    image = Image(sha256=sha256, path=str(path), size=size, format=fmt)
    session.add(image)
    session.flush()
    return image


def add_face(session, versions, image, female, eyes, *, method="aligned", index=0, box=None, landmarks=None) -> int:
    face = Face(image_id=image.id, method=method, index=index, box=box, landmarks=landmarks)
    session.add(face)
    session.flush()
    session.add(Prediction(face_id=face.id, attribute="gender", value=1 - female, model_version_id=versions["gender"],
                           gender_version_id=versions["gender"], extra={"male_prob": 1 - female, "female_prob": female}))
    for name, value in (("eyes", eyes), ("mouth", 0.5), ("background_mean", 1 - eyes)):
        session.add(Prediction(face_id=face.id, attribute=name, value=value, model_version_id=versions[name],
                               gender_version_id=versions["gender"]))
    return face.id


@pytest.fixture
def versions(factory):
    """An active version of every model, recorded without model files (exports never load them)."""
    with transaction(factory) as session:
        records = [ModelVersion(name=spec.name, version=1, path="unused.keras", sha256="0" * 64, input_spec={},
                                metrics={}, active=True) for spec in chain_order()]
        session.add_all(records)
        session.flush()
        return {r.name: r.id for r in records}


@pytest.fixture
def face_ids(factory, versions, tmp_path):
    """Twenty annotated aligned portraits (12 male, 8 female) whose eyes value is index / 20."""
    paths = write_faces(tmp_path / "photos", FACES)
    with transaction(factory) as session:
        return [add_face(session, versions, add_image(session, path), female, i / FACES)
                for i, (path, female) in enumerate(zip(paths, FEMALE_PROBS))]


def add_label(factory, face_id, attribute, value, source="alice"):
    with transaction(factory) as session:
        session.add(Label(face_id=face_id, attribute=attribute, value=value, source=source))


def export(factory, output, **options):
    with factory() as session:
        return run_export(session, ExportOptions(**options), output, io.StringIO())


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_manifest(path):
    return json.loads(Path(path).read_text())


# --- formats ------------------------------------------------------------------------------------------------


def test_csv_round_trips_with_box_versions_and_manifest(factory, face_ids, tmp_path):
    result = export(factory, tmp_path / "out" / "labels.csv")
    rows = read_csv(tmp_path / "out" / "labels.csv")
    assert list(rows[0]) == csv_columns() and len(rows) == FACES == result.rows
    by_name = {Path(r["path"]).name: r for r in rows}
    assert float(by_name["face_004.png"]["eyes"]) == pytest.approx(4 / FACES)
    assert float(by_name["face_003.png"]["female_prob"]) == pytest.approx(0.9)
    assert {r["box"] for r in rows} == {""}  # aligned portraits have no box
    assert {r["eyes_version"] for r in rows} == {"eyes@1"}

    manifest = read_manifest(tmp_path / "out" / "labels.csv.manifest.json")
    assert result.manifest == tmp_path / "out" / "labels.csv.manifest.json"
    assert manifest["format"] == "csv" and manifest["files"] == ["labels.csv"]
    assert manifest["counts"] == {"total": 20, "splits": {"all": {"total": 20, "female": 8, "male": 12}}}
    assert manifest["model_versions"] == ALL_VERSIONS and manifest["label_sources"] == []
    assert manifest["options"]["attributes"] == ["gender", "eyes", "mouth", "background_mean"]
    assert manifest["annotate_version"] and manifest["created_at"]


def test_jsonl_and_parquet_hold_the_same_rows_as_csv(factory, face_ids, tmp_path):
    import pyarrow.parquet as pq

    split = {"train": 0.5, "test": 0.5}
    export(factory, tmp_path / "labels.csv", split=split)
    export(factory, tmp_path / "labels.jsonl", format="jsonl", split=split)
    export(factory, tmp_path / "labels.parquet", format="parquet", split=split)
    from_jsonl = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    from_parquet = pq.read_table(tmp_path / "labels.parquet").to_pylist()
    from_csv = read_csv(tmp_path / "labels.csv")
    assert from_jsonl == from_parquet and len(from_jsonl) == FACES
    assert list(from_jsonl[0]) == csv_columns(with_split=True)
    assert [r["sha256"] for r in from_csv] == [r["sha256"] for r in from_jsonl]
    assert [r["split"] for r in from_csv] == [r["split"] for r in from_jsonl]
    assert [float(r["eyes"]) for r in from_csv] == [r["eyes"] for r in from_jsonl]
    hashes = {read_manifest(tmp_path / f"labels.{ext}.manifest.json")["rows_sha256"] for ext in ("csv", "jsonl", "parquet")}
    assert len(hashes) == 1  # the hash is of the rows, whatever the format


def test_detected_faces_export_their_box_and_their_aligned_image(factory, versions, tmp_path):
    from annotator.exports.formats.tfrecord import load_dataset
    from annotator.faces.alignment import TEMPLATE, align_face
    from annotator.images.decoding import decode_photo

    [path] = write_faces(tmp_path / "group", 1, size=200)
    boxes = ([1.0, 2.0, 30.0, 40.0], [50.0, 5.0, 90.0, 60.0])
    landmarks = [(TEMPLATE * 0.5 + 10).tolist(), (TEMPLATE * 0.8 + 60).tolist()]
    with transaction(factory) as session:
        image = add_image(session, path)
        for index, box in enumerate(boxes):
            add_face(session, versions, image, 0.2, 0.5, method="mtcnn-32-0.90", index=index, box=box,
                     landmarks=landmarks[index])
    export(factory, tmp_path / "faces.csv")
    assert [json.loads(r["box"]) for r in read_csv(tmp_path / "faces.csv")] == [[1, 2, 30, 40], [50, 5, 90, 60]]
    export(factory, tmp_path / "faces.tfrecord", format="tfrecord")
    exported = [image.numpy() for image, _ in load_dataset(tmp_path / "faces.tfrecord")]
    photo = decode_photo(path)
    for face, points in zip(exported, landmarks, strict=True):  # warped again exactly as the job warped it
        np.testing.assert_allclose(face, align_face(photo, np.array(points)), atol=0.5 / 255)


def test_tfrecord_round_trips_through_the_shipped_parser(factory, face_ids, tmp_path):
    from annotator.exports.formats.tfrecord import load_dataset, parse_metadata
    from annotator.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    result = export(factory, tmp_path / "faces.tfrecord", format="tfrecord", attributes=("gender", "eyes"),
                    split={"train": 0.8, "val": 0.2})
    assert [f.name for f in result.files] == ["faces.train.tfrecord", "faces.val.tfrecord"]
    expected = {Path(r["path"]).name: r for r in read_csv_export(factory, tmp_path)}
    seen = 0
    for file in result.files:
        dataset = load_dataset(file)
        assert dataset.element_spec[0].shape == (120, 120, 3) and dataset.element_spec[0].dtype == tf.float32
        assert set(dataset.element_spec[1]) == {"male_prob", "female_prob", "eyes"}
        metadata = tf.data.TFRecordDataset(str(file)).map(parse_metadata)
        for (image, labels), meta in zip(dataset, metadata):
            path = meta["path"].numpy().decode()
            row = expected[Path(path).name]
            assert meta["sha256"].numpy().decode() == row["sha256"] and int(meta["face_index"]) == 0
            assert float(labels["eyes"]) == pytest.approx(float(row["eyes"]))
            assert float(labels["female_prob"]) == pytest.approx(float(row["female_prob"]))
            np.testing.assert_allclose(image.numpy(), decode_face(Path(path)), atol=1e-6)  # PNG is lossless
            seen += 1
    assert seen == FACES == sum(c["total"] for c in result.counts.values())


def read_csv_export(factory, tmp_path):
    export(factory, tmp_path / "reference.csv")
    return read_csv(tmp_path / "reference.csv")


def test_tfrecord_jpeg_faces_decode_to_the_same_shape(factory, face_ids, tmp_path):
    from annotator.exports.formats.tfrecord import load_dataset

    export(factory, tmp_path / "faces.tfrecord", format="tfrecord", image_format="jpeg")
    images = [image.numpy() for image, _ in load_dataset(tmp_path / "faces.tfrecord")]
    assert len(images) == FACES and all(i.shape == (120, 120, 3) and 0 <= i.min() <= i.max() <= 1 for i in images)


def test_folders_are_read_by_keras_with_the_right_class_counts(factory, face_ids, tmp_path):
    import keras

    result = export(factory, tmp_path / "out", format="folders", split={"train": 0.5, "val": 0.5}, seed=3)
    assert (tmp_path / "out" / "manifest.json").is_file() and result.manifest == tmp_path / "out" / "manifest.json"
    assert read_manifest(result.manifest)["files"] == ["train", "val"]
    for split in ("train", "val"):
        dataset = keras.utils.image_dataset_from_directory(tmp_path / "out" / split, image_size=(120, 120),
                                                           batch_size=None, shuffle=False, verbose=False)
        assert dataset.class_names == ["female", "male"]
        counts = Counter(int(label) for _, label in dataset)
        assert counts == {0: result.counts[split]["female"], 1: result.counts[split]["male"]}
    assert result.counts["train"]["total"] + result.counts["val"]["total"] == FACES


def test_condition_data_keeps_its_columns_and_splits_into_files(factory, face_ids, tmp_path):
    result = export(factory, tmp_path / "condition.csv", format="condition-data", attributes=("mouth",),
                    split={"train": 0.5, "test": 0.5})
    assert [f.name for f in result.files] == ["condition.train.csv", "condition.test.csv"]
    rows = [row for f in result.files for row in read_csv(f)]
    assert list(rows[0]) == CONDITION_DATA_COLUMNS and len(rows) == FACES
    assert {r["mouth"] for r in rows} == {"0.5"} and {r["eyes"] for r in rows} == {""}  # eyes not exported


def test_missing_pyarrow_names_the_pip_command(factory, face_ids, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` raise ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'annotate\[export\]'"):
        export(factory, tmp_path / "labels.parquet", format="parquet")


# --- selection ----------------------------------------------------------------------------------------------


def test_attributes_restrict_the_columns_and_unknown_ones_are_listed(factory, face_ids, tmp_path):
    export(factory, tmp_path / "mouth.csv", attributes=("mouth",))
    assert list(read_csv(tmp_path / "mouth.csv")[0]) == csv_columns(["mouth"])
    assert read_manifest(tmp_path / "mouth.csv.manifest.json")["model_versions"] == ["gender@1", "mouth@1"]
    with pytest.raises(ExportError, match="Unknown attribute 'hair'. Valid attributes: gender, eyes, mouth"):
        export(factory, tmp_path / "hair.csv", attributes=("hair",))


def test_min_confidence_drops_unsure_faces_but_not_labelled_ones(factory, face_ids, tmp_path):
    def names(**options):
        export(factory, tmp_path / "out.csv", **options)
        return {Path(r["path"]).name for r in read_csv(tmp_path / "out.csv")}

    assert "face_000.png" not in names(min_confidence=0.58)  # 0.55 male
    assert "face_001.png" in names(min_confidence=0.58)  # 0.6 female
    assert len(names(min_confidence=0.58)) == FACES - 1
    add_label(factory, face_ids[0], "gender", 0.0)
    assert "face_000.png" in names(min_confidence=0.9)  # a label counts as confidence 1
    assert "face_000.png" not in names(min_confidence=0.9, source="predictions")


def test_sources_choose_between_labels_and_predictions(factory, face_ids, tmp_path):
    add_label(factory, face_ids[2], "eyes", 1.0)
    add_label(factory, face_ids[2], "gender", 1.0)
    add_label(factory, face_ids[3], "eyes", 0.0, source="import")

    def rows(**options):
        export(factory, tmp_path / "out.csv", **options)
        return {Path(r["path"]).name: r for r in read_csv(tmp_path / "out.csv")}

    best = rows()
    assert len(best) == FACES and best["face_002.png"]["eyes"] == "1.0"
    assert best["face_002.png"]["eyes_version"] == "label:alice" and best["face_002.png"]["female_prob"] == "1.0"
    predicted = rows(source="predictions")
    assert predicted["face_002.png"]["eyes"] == str(2 / FACES) and predicted["face_002.png"]["eyes_version"] == "eyes@1"
    labelled = rows(source="labels", attributes=("eyes",))
    assert set(labelled) == {"face_002.png", "face_003.png"} and labelled["face_003.png"]["eyes"] == "0.0"
    assert labelled["face_003.png"]["gender_version"] == "gender@1"  # gender is not a selected attribute here
    assert set(rows(source="labels", attributes=("eyes", "gender"))) == {"face_002.png"}
    with pytest.raises(ExportError, match="None of the 20 annotated faces pass --source labels"):
        export(factory, tmp_path / "out.csv", source="labels")  # no face is labelled for every attribute


# --- manifest -----------------------------------------------------------------------------------------------


def test_manifest_hash_is_stable_and_follows_the_labels(factory, face_ids, tmp_path):
    def rows_hash(name, **options):
        result = export(factory, tmp_path / name, **options)
        return read_manifest(result.manifest)["rows_sha256"]

    split = {"train": 0.8, "test": 0.2}
    first = rows_hash("a.csv", split=split, seed=4)
    assert rows_hash("b.csv", split=split, seed=4) == first
    assert rows_hash("c.csv", split=split, seed=5) != first  # other seed, other split column
    add_label(factory, face_ids[7], "mouth", 1.0)
    labelled = rows_hash("d.csv", split=split, seed=4)
    assert labelled != first
    assert rows_hash("e.csv", split=split, seed=4, source="predictions") == first  # labels ignored
    with factory() as session:
        session.query(Label).filter_by(face_id=face_ids[7]).update({"value": 0.0})
        session.commit()
    assert rows_hash("f.csv", split=split, seed=4) not in (first, labelled)


# --- output checks ------------------------------------------------------------------------------------------


def test_outputs_in_the_way_are_refused(factory, face_ids, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ExportError, match="is a file; --format folders writes a folder"):
        export(factory, tmp_path / "taken", format="folders")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.png").write_text("x")
    with pytest.raises(ExportError, match="already exists and is not empty"):
        export(factory, tmp_path / "full", format="folders")
    with pytest.raises(ExportError, match="is a folder; --format csv writes a file"):
        export(factory, tmp_path / "full")
    with pytest.raises(ExportError, match="--format parquet writes files: give the output"):
        export(factory, None, format="parquet")
    with pytest.raises(ExportError, match="--format tfrecord with --split writes files"):
        export(factory, None, format="tfrecord", split={"train": 1.0})


def test_no_faces_is_an_error(factory, versions, tmp_path):
    with pytest.raises(ExportError, match="No annotated faces to export"):
        export(factory, tmp_path / "empty.csv")
    assert not (tmp_path / "empty.csv").exists()


@pytest.mark.parametrize("fmt, name", [("folders", "faces"), ("tfrecord", "faces.tfrecord")])
def test_an_unreadable_image_leaves_nothing_behind_and_a_retry_succeeds(factory, face_ids, tmp_path, fmt, name):
    victim = max((tmp_path / "photos").iterdir())  # most faces are written before it is reached
    away = victim.rename(tmp_path / "away.png")
    before = sorted(tmp_path.iterdir())
    with pytest.raises(ExportError, match=f"Cannot read the face of {victim}"):
        export(factory, tmp_path / name, format=fmt)
    assert sorted(tmp_path.iterdir()) == before  # no truncated file, half-filled folder or hidden stand-in
    away.rename(victim)
    result = export(factory, tmp_path / name, format=fmt)
    assert result.rows == FACES and result.manifest.is_file() and (tmp_path / name).exists()
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".partial")]


# --- command line -------------------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(main, ["export", *args], catch_exceptions=False)


def test_the_cli_exports_a_submitted_folder_in_every_format(settings, untrained_chain, tmp_path):
    import pyarrow.parquet as pq

    from annotator.exports.formats.tfrecord import load_dataset

    write_faces(tmp_path / "photos", 6)
    assert CliRunner().invoke(main, ["submit", str(tmp_path / "photos"), "--faces", "aligned"]).exit_code == 0
    result = invoke("--format", "jsonl", "--split", "train=0.5,test=0.5", "--seed", "2")
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 6 and {line["split"] for line in lines} <= {"train", "test"}

    result = invoke("--format", "tfrecord", "-o", str(tmp_path / "x.tfrecord"), "--attribute", "mouth")
    assert result.exit_code == 0 and "Wrote 6 faces (all 6)" in result.output
    assert sum(1 for _ in load_dataset(tmp_path / "x.tfrecord")) == 6
    assert json.loads((tmp_path / "x.tfrecord.manifest.json").read_text())["model_versions"] == ["gender@1", "mouth@1"]

    assert invoke("--format", "parquet", "-o", str(tmp_path / "x.parquet")).exit_code == 0
    assert pq.read_table(tmp_path / "x.parquet").num_rows == 6
    assert invoke("--format", "folders", "-o", str(tmp_path / "faces"), "--split", "a=0.5,b=0.5").exit_code == 0
    assert len(list((tmp_path / "faces").glob("*/*/*.png"))) == 6


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "xml"], "Invalid value for '--format'"),
    (["--attribute", "hair"], "Unknown attribute 'hair'. Valid attributes: gender, eyes, mouth, background_mean, identity."),
    (["--split", "train=0.9,val=0.2"], "Split fractions must sum to 1"),
    (["--format", "folders", "-o", "{tmp}/file.txt"], "is a file; --format folders writes a folder"),
    (["--min-confidence", "1", "-o", "{tmp}/out.csv"], "None of the 20 annotated faces pass --min-confidence 1"),
])
def test_bad_export_input_is_one_line_not_a_traceback(settings, face_ids, tmp_path, args, message):
    (tmp_path / "file.txt").write_text("x")
    result = invoke(*[arg.format(tmp=tmp_path) for arg in args])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:") and message in result.output
