import csv
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.errors import BackboneWeightsError
from annotator.exports.columns import csv_columns
from annotator.images.portraits import generate_portraits, write_portrait_folder
from annotator.models.specs import IDENTITY
from db.session import transaction

TINY_ALPHA = 0.35  # the smallest MobileNetV2 Keras builds; still ends in 1,280 channels


@pytest.fixture(scope="module")
def tiny_backbone_file(tmp_path_factory) -> Path:
    """Untrained MobileNetV2 (alpha 0.35, no top) weights in Keras' legacy .h5 layout, like the real file."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    backbone = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=TINY_ALPHA, include_top=False,
                                              weights=None, pooling="avg")
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, backbone)
    return path


def augmented(image: np.ndarray, seed: int, **only) -> np.ndarray:
    from annotator.training.identity import NO_AUGMENTATION, augment

    params = replace(NO_AUGMENTATION, **only)
    return augment(image, np.array([seed, 0], np.int64), params).numpy()


def test_seed_augmentation_ranges():
    from annotator.training.identity import SEED_AUGMENTATION

    assert (SEED_AUGMENTATION.brightness, SEED_AUGMENTATION.contrast, SEED_AUGMENTATION.hue,
            SEED_AUGMENTATION.saturation, SEED_AUGMENTATION.noise) == (0.15, (0.7, 1.3), 0.05, (0.7, 2.0), 0.08)
    grey = np.full((8, 8, 3), 0.5, np.float32)
    shifts = [augmented(grey, s, brightness=0.15).mean() - 0.5 for s in range(40)]
    assert max(np.abs(shifts)) <= 0.15 + 1e-6 and max(shifts) > 0.05 and min(shifts) < -0.05
    ramp = np.linspace(0.2, 0.8, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    factors = [augmented(ramp, s, contrast=(0.7, 1.3)).std() / ramp.std() for s in range(40)]
    assert 0.7 - 1e-4 <= min(factors) and max(factors) <= 1.3 + 1e-4 and max(factors) - min(factors) > 0.2
    noise = [(augmented(grey, s, noise=0.08) - grey).std() for s in range(5)]
    assert np.allclose(noise, 0.08, atol=0.02)
    left = np.zeros((4, 4, 3), np.float32)
    left[:, :2] = 1.0
    flipped = [augmented(left, s, flip=True)[0, 0, 0] == 0.0 for s in range(20)]
    assert 0 < sum(flipped) < 20  # some copies mirrored, some not
    assert augmented(left, 3, flip=True).tolist() == augmented(left, 3, flip=True).tolist()  # seeded


def test_hue_and_saturation_keep_images_in_range():
    colour = np.tile(np.float32([0.8, 0.3, 0.2]), (8, 8, 1))
    outputs = [augmented(colour, s, hue=0.05, saturation=(0.7, 2.0)) for s in range(20)]
    assert all(0.0 <= o.min() and o.max() <= 1.0 for o in outputs)
    assert len({round(float(o[0, 0, 1]), 3) for o in outputs}) > 5


def test_pipeline_order_is_cache_then_augment_then_prefetch():
    from annotator.training.identity import training_dataset

    images = np.zeros((6, 224, 224, 3), np.uint8)
    dataset = training_dataset(images, np.arange(6) % 2, batch_size=4, seed=112)
    stages = []
    while hasattr(dataset, "_input_dataset"):
        stages.append(type(dataset).__name__)
        dataset = dataset._input_dataset
    assert stages == ["_PrefetchDataset", "_BatchDataset", "_ParallelMapDataset", "_ShuffleDataset",
                      "CacheDataset"]
    first = next(iter(training_dataset(images, np.arange(6) % 2, batch_size=4, seed=112)))
    assert first[0].dtype.name == "float32" and tuple(first[0].shape) == (4, 224, 224, 3)


def test_head_has_the_seeds_1281_parameters_on_a_frozen_backbone(tiny_backbone_file):
    from annotator.training.identity import build_identity_model, load_backbone, trainable_parameters

    backbone = load_backbone(tiny_backbone_file)
    model = build_identity_model(backbone)
    assert trainable_parameters(model) == 1_281 and not backbone.trainable
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 1)


def test_backbone_weights_are_checked(tiny_backbone_file, tmp_path):
    import keras

    from annotator.training.identity import load_backbone

    reference = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=TINY_ALPHA, include_top=False,
                                               weights=None)
    renamed = tmp_path / "backbone.weights.h5"  # Keras 3 layout, no width in the name
    reference.save_weights(renamed)
    loaded = load_backbone(renamed)
    assert np.array_equal(loaded.get_weights()[0], reference.get_weights()[0])
    assert load_backbone(tiny_backbone_file).count_params() == reference.count_params()
    other = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save_weights(other)
    with pytest.raises(BackboneWeightsError, match="holds 15 weights, which fits no MobileNetV2"):
        load_backbone(other)
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(BackboneWeightsError, match="is not an HDF5 weights file"):
        load_backbone(tmp_path / "junk.h5")
    with pytest.raises(BackboneWeightsError, match="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top"):
        load_backbone(None)


def register_identity(factory, settings, *, active: bool) -> None:
    """A small stand-in identity model (224x224 in, one sigmoid out) in the store."""
    import keras

    from annotator.models.store import register_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(IDENTITY.input_shape), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(1, activation="sigmoid")], name="identity")
    with transaction(factory) as session:
        register_model(session, settings.home, IDENTITY, model, metrics={"test": True}, activate=active)


def test_identity_joins_the_chain_only_while_a_version_is_active(settings, factory, untrained_chain, tmp_path):
    from annotator.models.store import active_chain_versions

    register_identity(factory, settings, active=False)
    with factory() as session:
        assert [v.name for v in active_chain_versions(session)] == ["gender", "eyes", "mouth", "background_mean"]
    register_identity(factory, settings, active=True)
    with factory() as session:
        assert [v.name for v in active_chain_versions(session)][-1] == "identity"

    write_portrait_folder(tmp_path / "photos", 3)
    runner = CliRunner()
    submitted = runner.invoke(main, ["submit", str(tmp_path / "photos"), "--faces", "aligned"],
                              catch_exceptions=False)
    assert submitted.exit_code == 0 and "done 3" in submitted.output, submitted.output
    rows = list(csv.DictReader(io.StringIO(runner.invoke(main, ["export"], catch_exceptions=False).output)))
    assert list(rows[0]) == csv_columns(["eyes", "mouth", "background_mean", "identity"])
    assert all(0.0 <= float(row["identity"]) <= 1.0 and row["identity_version"] == "identity@2" for row in rows)


def test_train_identity_through_the_cli(settings, factory, tiny_backbone_file, tmp_path):
    from annotator.models.store import list_versions

    paths = write_portrait_folder(tmp_path / "faces", 20, seed=2)
    person = generate_portraits(20, seed=2).gender  # "the person" = long hair, a learnable stand-in
    (tmp_path / "people.csv").write_text("path,who\n" + "\n".join(
        f"faces/{p.name},{'alice' if g else 'someone'}" for p, g in zip(paths, person)) + "\n")
    result = CliRunner().invoke(main, [
        "train", "identity", "--data", str(tmp_path / "people.csv"), "--label-column", "who",
        "--class-map", "alice=1,someone=0", "--epochs", "1", "--backbone-weights", str(tiny_backbone_file)],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "classes: person" in result.output and "20% held out" in result.output
    assert "val accuracy" in result.output and "person" in result.output
    with factory() as session:
        (record,) = list_versions(session)
    assert record.label == "identity@1" and record.input_spec["input_shape"] == [224, 224, 3]
    assert record.metrics["kind"] == "binary" and record.metrics["n_train"] == 16 and record.metrics["n_val"] == 4
