"""`annotate models compare`: two stored versions judged on a labelled folder with the seed report."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.images.decoding import decode_face
from annotator.images.portraits import generate_portraits, write_portrait_folder
from tests.models.test_importing import channel_zero_model

COUNT, SEED = 21, 4


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def labelled_folder(folder: Path, attribute: str, extra_rows: tuple[str, ...] = ()) -> Path:
    """Generated portraits with their true labels in ``labels.csv`` (gender as male/female)."""
    paths = write_portrait_folder(folder, COUNT, seed=SEED)
    truth = generate_portraits(COUNT, seed=SEED)
    labels = [("female" if g else "male") for g in truth.gender] if attribute == "gender" \
        else [f"{v:g}" for v in truth.labels(attribute)]
    rows = ["path,label", *(f"{p.name},{label}" for p, label in zip(paths, labels)), *extra_rows]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder / "labels.csv"


def constant_gender_model(female: bool):
    """A gender model that answers the same class for every face."""
    import keras

    image = keras.Input((60, 60, 3))
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(image, dense(keras.layers.GlobalAveragePooling2D()(image)))
    dense.set_weights([np.zeros((3, 2), np.float32), np.float32([-6, 6] if female else [6, -6])])
    return model


def import_model(tmp_path: Path, name: str, model, file: str) -> None:
    model.save(tmp_path / file)
    result = invoke("models", "import", name, str(tmp_path / file))
    assert result.exit_code == 0, result.output


def test_gender_versions_get_accuracy_and_confusion(settings, factory, tmp_path):
    import_model(tmp_path, "gender", constant_gender_model(female=False), "male.keras")
    import_model(tmp_path, "gender", constant_gender_model(female=True), "female.keras")
    truth = generate_portraits(COUNT, seed=SEED).gender
    males, females = int(np.sum(truth == 0)), int(np.sum(truth == 1))
    assert males != females  # so that one version is better
    result = invoke("models", "compare", "gender", "1", "2", "--data", str(labelled_folder(tmp_path / "set", "gender")))
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"gender: {COUNT} labelled images" in out
    assert f"val accuracy       {males / COUNT:.4f}" in out and f"val accuracy       {females / COUNT:.4f}" in out
    assert f"male     {males:5d}  {0:6d}" in out and f"female   {0:5d}  {females:6d}" in out  # always-male
    assert f"male     {0:5d}  {males:6d}" in out and f"female   {0:5d}  {females:6d}" in out  # always-female
    assert out.count("COLLAPSED") == 2  # a constant answer is the textbook collapse
    assert f"Better: gender@{1 if males > females else 2}" in out


def test_regressor_versions_get_mse_baseline_ratio_and_verdict(settings, factory, untrained_chain, tmp_path):
    import_model(tmp_path, "background_mean", channel_zero_model("background_mean"), "channel0.keras")
    csv_path = labelled_folder(tmp_path / "set", "background_mean", extra_rows=("broken.jpg,0.5",))
    (tmp_path / "set" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    result = invoke("models", "compare", "background_mean", "1", "2", "--data", str(csv_path))
    assert result.exit_code == 0, result.output
    out = result.output

    labels = generate_portraits(COUNT, seed=SEED).background_mean
    red = np.array([decode_face(p)[..., 0].mean() for p in sorted((tmp_path / "set").glob("portrait_*.jpg"))])
    assert f"val MSE            {np.mean((labels - red) ** 2):.4f}" in out  # version 2 is the mean of channel 0
    assert "skipped 1 images that could not be decoded: broken.jpg" in out
    assert "gender input: gender@1" in out
    assert out.count("ratio") == 2 and out.count("collapse check") == 2 and out.count("baseline MSE") == 2
    assert "Better: background_mean@2" in out


def test_neutral_gender_uses_one_baseline_group(settings, factory, tmp_path):
    import_model(tmp_path, "eyes", channel_zero_model("eyes"), "a.keras")
    import_model(tmp_path, "eyes", channel_zero_model("eyes"), "b.keras")
    csv_path = labelled_folder(tmp_path / "set", "eyes")
    without = invoke("models", "compare", "eyes", "1", "2", "--data", str(csv_path))
    assert without.exit_code == 1 and "No active gender model" in without.output  # none imported here
    result = invoke("models", "compare", "eyes", "1", "2", "--data", str(csv_path), "--neutral-gender")
    assert result.exit_code == 0, result.output
    labels = generate_portraits(COUNT, seed=SEED).eyes
    assert f"baseline MSE       {np.var(labels):.4f}   (predicting the mean label)" in result.output
    assert "one group: gender unknown" in result.output and "No difference" in result.output


@pytest.mark.parametrize("rows, args, message", [
    (["a.jpg,0.5", "b.jpg,open"], ["eyes", "1", "1"], "line 2: eyes labels are numbers in 0..1. Received: label='open'"),
    (["a.jpg,1.5"], ["eyes", "1", "1"], "line 1: eyes labels are numbers in 0..1"),
    (["a.jpg,man"], ["gender", "1", "1"], "gender labels are male or female. Received: label='man'"),
    (["a.jpg,0.5,x"], ["eyes", "1", "1"], "expected 2 columns path,label. Received: 3 columns"),
    (["a.jpg,0.5"], ["eyes", "1", "9"], "No stored model eyes@9"),
    (["a.jpg,male"], ["gender", "1", "1", "--neutral-gender"], "the gender model needs none"),
    (["missing.jpg,0.5"], ["eyes", "1", "1"], "lists no image that could be decoded (1 failed)"),
])
def test_bad_labelled_sets_are_one_line_errors(settings, factory, untrained_chain, tmp_path, rows, args, message):
    write_portrait_folder(tmp_path, 2, seed=0)
    (tmp_path / "portrait_00000.jpg").rename(tmp_path / "a.jpg")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    result = invoke("models", "compare", *args, "--data", str(tmp_path / "labels.csv"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_missing_csv_is_an_error(settings, factory, untrained_chain, tmp_path):
    result = invoke("models", "compare", "eyes", "1", "1", "--data", str(tmp_path / "nope.csv"))
    assert result.exit_code == 1 and "Cannot read the labelled CSV" in result.output
