import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.images.portraits import generate_portraits, write_portrait_folder
from annotator.models.store import list_versions

PORTRAITS = 40


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def portrait_set(tmp_path: Path) -> Path:
    """A folder of generated portraits with a manifest.csv of gender and mouth labels."""
    folder = tmp_path / "portraits"
    paths = write_portrait_folder(folder / "images", PORTRAITS, seed=5)
    truth = generate_portraits(PORTRAITS, seed=5)
    rows = [f"images/{p.name},{'female' if g else 'male'},{m}" for p, g, m in zip(paths, truth.gender, truth.mouth)]
    (folder / "manifest.csv").write_text("path,label,mouth\n" + "\n".join(rows) + "\n")
    return folder


def stored(factory):
    with factory() as session:
        return [(v.label, v.active, v.is_demo, v.metrics) for v in list_versions(session)]


def test_train_registers_a_version_with_its_report(settings, factory, portrait_set):
    result = invoke("train", "gender", "--data", str(portrait_set), "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert f"gender: {PORTRAITS} usable rows" in result.output and "manifest layout" in result.output
    assert "epoch 1/2" in result.output and "epoch 2/2" in result.output
    assert "val accuracy" in result.output and "confusion" in result.output
    ((label, active, is_demo, metrics),) = stored(factory)
    assert label == "gender@1" and not active and not is_demo
    assert metrics["kind"] == "gender" and metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == PORTRAITS
    # Gender holds out a test split by default and trains on augmented copies.
    assert metrics["n_test"] == 6 and "TEST accuracy" in result.output and "augmentation: flip" in result.output
    assert metrics["recipe"]["test_split"] == 0.15 and metrics["recipe"]["augment"] is True
    assert metrics["rows_used"] == PORTRAITS and metrics["recipe"]["epochs_run"] == 2
    assert len(metrics["history"]["val_loss"]) == 2
    json.dumps(metrics, allow_nan=False)  # strict JSON, as PostgreSQL stores it


def test_gender_without_test_split_or_augmentation(settings, factory, portrait_set):
    result = invoke("train", "gender", "--data", str(portrait_set), "--epochs", "1", "--test-split", "0",
                    "--no-augment")
    assert result.exit_code == 0, result.output
    assert "TEST accuracy" not in result.output and "augmentation: none" in result.output
    ((*_, metrics),) = stored(factory)
    assert metrics["n_test"] == 0 and metrics["n_train"] + metrics["n_val"] == PORTRAITS
    assert metrics["recipe"]["augment"] is False


def test_regressor_report_is_stored_and_printed(settings, factory, portrait_set, monkeypatch):
    monkeypatch.setattr("annotator.models.seed_report.is_collapsed", lambda outputs: False)
    result = invoke("train", "mouth", "--data", str(portrait_set / "manifest.csv"), "--label-column", "mouth",
                    "--epochs", "1", "--activate")
    assert result.exit_code == 0, result.output
    assert "ratio" in result.output and "first 15 outputs" in result.output
    assert "Registered and activated mouth@1" in result.output
    ((label, active, _, metrics),) = stored(factory)
    assert label == "mouth@1" and active and metrics["kind"] == "regressor" and len(metrics["first_outputs"]) == 15
    assert metrics["gender_input"] == "neutral 0.5/0.5" and metrics["mean_female"] is None  # one group, no NaN


def test_a_collapsed_model_is_not_activated_unless_forced(settings, factory, portrait_set, monkeypatch):
    monkeypatch.setattr("annotator.models.seed_report.is_collapsed", lambda outputs: True)
    args = ["train", "mouth", "--data", str(portrait_set), "--label-column", "mouth", "--epochs", "1"]
    refused = invoke(*args, "--activate")
    assert refused.exit_code == 1
    assert "mouth@1 failed the collapse check" in refused.output and "Traceback" not in refused.output
    plain = invoke(*args)
    assert plain.exit_code == 0 and "Warning: mouth@2 failed the collapse check" in plain.output
    forced = invoke(*args, "--activate", "--force")
    assert forced.exit_code == 0 and "activated mouth@3 despite the failed collapse check" in forced.output
    assert [(label, active) for label, active, _, _ in stored(factory)] == [
        ("mouth@1", False), ("mouth@2", False), ("mouth@3", True)]
    assert all(metrics["collapsed"] for *_, metrics in stored(factory))


@pytest.mark.parametrize("args, message", [
    (["train", "hair", "--data", "x.csv"], "Unknown model 'hair'"),
    (["train", "mouth", "--data", "nowhere.csv"], "Data set not found: nowhere.csv"),
    (["train", "mouth", "--data", "x.csv", "--class-map", "open"], "NAME=VALUE"),
    (["train", "mouth", "--data", "x.csv", "--backbone-weights", "w.h5"], "--backbone-weights is for models"),
    (["train", "identity", "--data", "x.csv"], "needs pretrained backbone weights"),
    (["train", "identity", "--data", "x.csv", "--backbone-weights", "w.h5"], "weights file not found"),
    (["train", "gender", "--data", "x.csv", "--val-split", "0.5", "--test-split", "0.5"], "leave rows to train on"),
    (["train", "mouth", "--data", "x.csv", "--test-split", "0.1"], "gender model only"),
])
def test_user_errors_are_one_line(settings, args, message):
    result = invoke(*args)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_single_class_data_is_a_one_line_error(settings, portrait_set):
    manifest = portrait_set / "manifest.csv"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([lines[0], *(line.replace("female", "male") for line in lines[1:])]) + "\n")
    result = invoke("train", "gender", "--data", str(portrait_set))
    assert result.exit_code == 1 and "label male; gender needs examples of more than one class" in result.output
