import json
from xml.etree import ElementTree

import pytest

from annotator.errors import LabelFileError
from annotator.exports.query import face_rows
from annotator.labels.exporting import label_studio_tasks, write_label_studio
from annotator.labels.importing import import_labels
from annotator.labels.label_studio import image_url, parse_path_prefix
from annotator.labels.uncertainty import attribute_uncertainty, face_uncertainty, gender_uncertainty
from annotator.models.specs import chain_order
from db.session import transaction
from tests.conftest import fake_chain, record_annotations, write_faces

CERTAIN = {"gender": 0.0, "eyes": 1.0, "mouth": 0.0, "background_mean": 1.0}


def test_uncertainty_scores():
    assert gender_uncertainty(0.5) == pytest.approx(1.0)
    assert gender_uncertainty(0.0) == gender_uncertainty(1.0) == 0.0
    assert gender_uncertainty(0.1) == pytest.approx(gender_uncertainty(0.9)) == pytest.approx(0.469, abs=1e-3)
    assert attribute_uncertainty("eyes", 0.5) == 1.0 and attribute_uncertainty("eyes", 0.0) == 1.0 - 1.0
    assert attribute_uncertainty("eyes", 0.75) == pytest.approx(0.5)
    assert attribute_uncertainty("eyes", 0.9, label=0.0) == pytest.approx(0.9)  # disagreeing with a person
    assert face_uncertainty({"eyes": 0.5, "mouth": 1.0}, {}) == (1.0, 0.5)


def test_tasks_come_most_uncertain_first_with_predictions_as_pre_annotations(factory, tmp_path):
    fake_chain(factory)
    paths = write_faces(tmp_path / "photos", 4)
    record_annotations(factory, paths, [
        CERTAIN,
        {**CERTAIN, "eyes": 0.55},  # a regressor near 0.5
        {**CERTAIN, "gender": 0.5},  # gender at 50/50
        {**CERTAIN, "mouth": 0.2},  # certain-looking, but a person said 1
    ])
    labels = tmp_path / "alice.csv"
    labels.write_text("path,mouth\nphotos/face_003.png,1\n")
    with transaction(factory) as session:
        import_labels(session, labels)
    with factory() as session:
        tasks = label_studio_tasks(session)
        assert [t["data"]["path"].rsplit("/", 1)[-1] for t in label_studio_tasks(session, limit=2)] == \
            ["face_002.png", "face_001.png"]
    order = [t["data"]["path"].rsplit("/", 1)[-1] for t in tasks]
    assert order == ["face_002.png", "face_001.png", "face_003.png", "face_000.png"]
    assert [t["data"]["uncertainty"] for t in tasks] == [1.0, 0.9, 0.8, 0.0]

    gender_coin = tasks[0]
    assert gender_coin["data"]["image"] == "/data/local-files/?d=" + str(paths[2])
    assert gender_coin["data"]["face_index"] == 0 and gender_coin["data"]["method"] == "aligned"
    prediction = gender_coin["predictions"][0]
    assert prediction["model_version"] == "gender@1 eyes@1 mouth@1 background_mean@1"
    assert prediction["score"] == 0.0
    assert {r["from_name"]: r["value"]["choices"][0] for r in prediction["result"]} == \
        {"gender": "female", "eyes": "1", "mouth": "0", "background_mean": "1"}
    near_half = {r["from_name"]: r["value"]["choices"][0] for r in tasks[1]["predictions"][0]["result"]}
    assert near_half["eyes"] == "0.5"


def test_the_labelling_config_names_every_model_and_offers_every_pre_annotation(factory, tmp_path):
    fake_chain(factory)
    record_annotations(factory, write_faces(tmp_path / "photos", 3),
                       [{"eyes": 0.1, "gender": 0.8}, {"mouth": 0.6, "background_mean": 0.3}, {}])
    with factory() as session, pytest.raises(LabelFileError, match="Cannot write .*tasks.json: No such file"):
        write_label_studio(session, tmp_path / "out" / "tasks.json")
    (tmp_path / "out").mkdir()
    with factory() as session:
        written = write_label_studio(session, tmp_path / "out" / "tasks.json")
    assert written.config == tmp_path / "out" / "tasks.label_config.xml" and written.count == 3
    view = ElementTree.fromstring(written.config.read_text())
    controls = {c.get("name"): {choice.get("value") for choice in c} for c in view.iter("Choices")}
    assert list(controls) == [spec.name for spec in chain_order()]
    assert controls["gender"] == {"male", "female"} and controls["eyes"] == {"0", "0.5", "1"}
    assert {c.get("toName") for c in view.iter("Choices")} == {view.find("Image").get("name")}
    for task in json.loads(written.tasks.read_text()):
        for result in task["predictions"][0]["result"]:
            assert result["value"]["choices"][0] in controls[result["from_name"]]


def test_path_prefixes_rewrite_the_image_root():
    prefixes = [parse_path_prefix("/srv/photos=photos"), parse_path_prefix("/srv=/data")]
    assert image_url("/srv/photos/a b.png", prefixes) == "/data/local-files/?d=photos/a%20b.png"
    assert image_url("/srv/other/x.png", prefixes) == "/data/local-files/?d=/data/other/x.png"
    assert image_url("/srv/photosets/x.png", [("/srv/photos", "p")]) == "/data/local-files/?d=/srv/photosets/x.png"
    with pytest.raises(ValueError, match="OLD=NEW"):
        parse_path_prefix("/srv/photos")


def test_what_the_export_writes_imports_back_as_labels(factory, tmp_path):
    """A labeller who accepts every pre-annotation produces labels equal to the rounded predictions."""
    fake_chain(factory)
    record_annotations(factory, write_faces(tmp_path / "photos", 2), [{"eyes": 0.3, "gender": 0.7}, {}])
    with factory() as session:
        tasks = label_studio_tasks(session)
    accepted = [{**task, "annotations": [{"result": task["predictions"][0]["result"]}]} for task in tasks]
    (tmp_path / "done.json").write_text(json.dumps(accepted))
    with transaction(factory) as session:
        result = import_labels(session, tmp_path / "done.json")
    assert result.summary() == "imported 8 labels for 2 faces, skipped 0 rows"
    with factory() as session:
        rows = {row.path.rsplit("/", 1)[-1]: row for row in face_rows(session)}
    assert rows["face_000.png"].values["eyes"] == 0.5 and rows["face_000.png"].values["female_prob"] == 1.0
    assert rows["face_001.png"].values["eyes"] == 1.0 and rows["face_001.png"].values["female_prob"] == 0.0
    assert set(rows["face_000.png"].sources.values()) == {"label:done.json"}
