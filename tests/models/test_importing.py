"""`annotate models import`: every format, every refusal, and the chain honouring the channel order."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from annotator.cli import main
from annotator.models.specs import get_spec
from annotator.settings import Settings
from db.models import ModelVersion


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def seeded_model(name: str, seed: int = 3):
    import keras

    from annotator.models.architectures import build_model

    keras.utils.set_random_seed(seed)
    return build_model(get_spec(name))


def sample_inputs(name: str, n: int = 6) -> list[np.ndarray]:
    spec = get_spec(name)
    rng = np.random.default_rng(1)
    images = rng.random((n, *spec.input_shape), dtype=np.float32)
    female = rng.random((n, 1), dtype=np.float32)
    return [images, np.hstack([1 - female, female])] if spec.takes_gender else [images]


def run(model, inputs: list[np.ndarray]) -> np.ndarray:
    return np.asarray(model(inputs if len(inputs) > 1 else inputs[0], training=False))


def stored(factory, name: str) -> ModelVersion:
    with factory() as session:
        return session.scalars(select(ModelVersion).where(ModelVersion.name == name)
                               .order_by(ModelVersion.version.desc())).first()


def load_stored(record: ModelVersion):
    from annotator.models.store import load_keras_model

    return load_keras_model(record, Settings.from_env().home)


def write_legacy_weights(model, path: Path) -> None:
    """Write ``model``'s weights as Keras 2's ``save_weights`` did, under the seed's own layer names."""
    with h5py.File(path, "w") as handle:
        names = []
        for index, layer in enumerate(model.layers):
            name = f"seed_layer_{index}"  # names differ from ours: loading must go by order, as Keras 2 did
            names.append(name.encode())
            group = handle.create_group(name)
            weight_names = [f"{name}/{w.name}:0".encode() for w in layer.weights]
            group.attrs["weight_names"] = weight_names
            for weight_name, weight in zip(weight_names, layer.weights):
                group.create_dataset(weight_name.decode(), data=np.asarray(weight))
        handle.attrs["layer_names"] = names
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.13.1"


def write_flat_saved_model(model, name: str, folder: Path, flat_size: int | None = None):
    """Save a SavedModel whose signature takes the seed's flat vector and splits it, as the seed models did."""
    import tensorflow as tf

    spec = get_spec(name)
    size = flat_size or spec.flat_input_size

    class FlatSeedModel(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, size], tf.float32)])
        def __call__(self, vector):
            pixels = int(np.prod(spec.input_shape))
            image = tf.reshape(vector[:, :pixels], (-1, *spec.input_shape))
            if spec.takes_gender:
                return self.model([image, vector[:, pixels:]], training=False)
            return self.model(image, training=False)

    module = FlatSeedModel()
    tf.saved_model.save(module, str(folder), signatures=module.__call__)
    return module


def flat_vector(inputs: list[np.ndarray]) -> np.ndarray:
    return np.hstack([inputs[0].reshape(len(inputs[0]), -1), *inputs[1:]]).astype(np.float32)


def test_keras_file_becomes_the_next_version(settings, factory, untrained_chain, tmp_path):
    model = seeded_model("eyes")
    model.save(tmp_path / "eyes.keras")
    result = invoke("models", "import", "eyes", str(tmp_path / "eyes.keras"))
    assert result.exit_code == 0, result.output
    assert "Imported eyes@2" in result.output and "not active" in result.output
    record = stored(factory, "eyes")
    assert record.version == 2 and not record.active
    assert record.metrics == {"imported_from": str((tmp_path / "eyes.keras").resolve()), "format": "keras"}
    assert record.input_spec["channel_order"] == "RGB"
    assert record.path == "models/eyes/eyes-v2.keras" and (settings.home / record.path).is_file()
    inputs = sample_inputs("eyes")
    np.testing.assert_allclose(run(load_stored(record), inputs), run(model, inputs), atol=1e-6)


def test_activate_flag_makes_the_import_active(settings, factory, untrained_chain, tmp_path):
    seeded_model("mouth").save(tmp_path / "mouth.keras")
    assert "active." in invoke("models", "import", "mouth", str(tmp_path / "mouth.keras"), "--activate").output
    assert "* mouth@2" in invoke("models", "list").output


def test_lambda_layer_is_refused(settings, factory, tmp_path):
    import keras

    spec = get_spec("gender")
    image = keras.Input(spec.input_shape)
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Lambda(lambda x: x * 2.0, name="doubler")(image))
    keras.Model(image, keras.layers.Dense(2, activation="softmax")(pooled)).save(tmp_path / "lambda.keras")
    result = invoke("models", "import", "gender", str(tmp_path / "lambda.keras"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "contains a Lambda layer ('doubler')" in result.output
    assert stored(factory, "gender") is None


def test_legacy_h5_weights_load_into_the_seed_architecture(settings, factory, tmp_path):
    model = seeded_model("background_mean")
    write_legacy_weights(model, tmp_path / "background.h5")
    result = invoke("models", "import", "background_mean", str(tmp_path / "background.h5"))
    assert result.exit_code == 0, result.output
    record = stored(factory, "background_mean")
    assert record.metrics["format"] == "h5-weights"
    inputs = sample_inputs("background_mean", n=3)
    np.testing.assert_allclose(run(load_stored(record), inputs), run(model, inputs), atol=1e-6)


def test_h5_weights_of_another_architecture_name_both_shapes(settings, factory, tmp_path):
    write_legacy_weights(seeded_model("mouth"), tmp_path / "mouth.h5")
    result = invoke("models", "import", "eyes", str(tmp_path / "mouth.h5"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "not the seed architecture of eyes" in result.output and "Received: shape=" in result.output
    assert "(3, 3, 32, 48)" in result.output  # eyes' second conv, expected ...
    assert len(result.output.strip().splitlines()) == 1


def test_h5_full_model_file(settings, factory, tmp_path):
    model = seeded_model("gender")
    model.save(tmp_path / "gender.h5")  # the legacy full-model HDF5 format
    result = invoke("models", "import", "gender", str(tmp_path / "gender.h5"), "--activate")
    assert result.exit_code == 0, result.output
    record = stored(factory, "gender")
    assert record.metrics["format"] == "h5-model" and record.active
    inputs = sample_inputs("gender")
    np.testing.assert_allclose(run(load_stored(record), inputs), run(model, inputs), atol=1e-6)


@pytest.mark.parametrize("name", ["eyes", "gender"])
def test_saved_model_of_the_flat_vector_is_converted(settings, factory, tmp_path, name):
    model = seeded_model(name, seed=5)
    module = write_flat_saved_model(model, name, tmp_path / "saved")
    result = invoke("models", "import", name, str(tmp_path / "saved"))
    assert result.exit_code == 0, result.output
    record = stored(factory, name)
    assert record.metrics["format"] == "saved_model"
    inputs = sample_inputs(name)
    expected = module(flat_vector(inputs)).numpy()  # what the SavedModel itself answers for the flat vector
    np.testing.assert_allclose(run(load_stored(record), inputs), expected, atol=1e-5)


def test_saved_model_with_the_wrong_signature_is_refused(settings, factory, tmp_path):
    write_flat_saved_model(seeded_model("gender"), "gender", tmp_path / "saved", flat_size=120 * 120 * 3)
    result = invoke("models", "import", "gender", str(tmp_path / "saved"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "expected one float input of shape (None, 10800)" in result.output
    assert "Received: shape=inputs [(None, 43200)], outputs [(None, 2)]" in result.output


def test_flat_input_keras_model_is_adapted_to_the_chain_inputs(settings, factory, tmp_path):
    import keras

    spec = get_spec("eyes")
    vector = keras.Input((spec.flat_input_size,))
    keras.utils.set_random_seed(2)
    flat_model = keras.Model(vector, keras.layers.Dense(1, activation="sigmoid")(vector))
    flat_model.save(tmp_path / "flat.keras")
    assert invoke("models", "import", "eyes", str(tmp_path / "flat.keras")).exit_code == 0
    inputs = sample_inputs("eyes")
    np.testing.assert_allclose(run(load_stored(stored(factory, "eyes")), inputs),
                               run(flat_model, [flat_vector(inputs)]), atol=1e-5)


def test_keras_model_of_the_wrong_shapes_is_refused(settings, factory, tmp_path):
    seeded_model("mouth").save(tmp_path / "mouth.keras")
    result = invoke("models", "import", "eyes", str(tmp_path / "mouth.keras"))
    assert result.exit_code == 1
    assert "expected inputs [(32, 60, 3), (2,)]" in result.output
    assert "Received: shape=inputs [(60, 60, 3), (2,)], output [(1,)]" in result.output


def test_gender_model_without_softmax_is_refused(settings, factory, tmp_path):
    import keras

    image = keras.Input(get_spec("gender").input_shape)
    logits = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(image))
    keras.Model(image, logits).save(tmp_path / "logits.keras")
    result = invoke("models", "import", "gender", str(tmp_path / "logits.keras"))
    assert result.exit_code == 1 and "does not end in a 2-way softmax" in result.output


@pytest.mark.parametrize("args, message", [
    (["hair", "model.keras"], "Unknown model 'hair'. Known models: gender"),
    (["eyes", "missing.keras"], "Model file not found"),
    (["eyes", "model.onnx"], "Unknown model format .onnx"),
    (["eyes", "not_a_zip.keras"], "is not a Keras 3 .keras archive"),
    (["eyes", "folder"], "is a folder without saved_model.pb"),
])
def test_bad_paths_and_names_are_one_line_errors(settings, factory, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    (tmp_path / "not_a_zip.keras").write_text("hello")
    (tmp_path / "folder").mkdir()
    result = invoke("models", "import", *args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def channel_zero_model(name: str):
    """A model whose output is the mean of its input's channel 0: it tells which channel comes first."""
    import keras

    spec = get_spec(name)
    image, gender = keras.Input(spec.input_shape), keras.Input((2,))
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    dense = keras.layers.Dense(1, use_bias=False)
    model = keras.Model([image, gender], dense(keras.layers.Concatenate()([pooled, gender])))
    dense.set_weights([np.float32([[1], [0], [0], [0], [0]])])
    return model


def test_chain_feeds_bgr_models_reversed_channels(settings, factory, untrained_chain, tmp_path):
    from annotator.models.chain import load_chain, run_chain
    from annotator.models.store import get_version

    channel_zero_model("eyes").save(tmp_path / "channel0.keras")
    assert invoke("models", "import", "eyes", str(tmp_path / "channel0.keras"), "--channel-order", "bgr").exit_code == 0
    assert invoke("models", "import", "eyes", str(tmp_path / "channel0.keras")).exit_code == 0
    faces = np.empty((2, 120, 120, 3), np.float32)
    faces[..., 0], faces[..., 1], faces[..., 2] = 0.2, 0.5, 0.8  # RGB: red 0.2, blue 0.8
    with factory() as session:
        gender = get_version(session, "gender", 1)
        bgr, rgb = get_version(session, "eyes", 2), get_version(session, "eyes", 3)
        assert bgr.input_spec["channel_order"] == "BGR" and rgb.input_spec["channel_order"] == "RGB"
        np.testing.assert_allclose(run_chain(load_chain([gender, bgr], settings.home), faces)["eyes"], 0.8, atol=1e-4)
        np.testing.assert_allclose(run_chain(load_chain([gender, rgb], settings.home), faces)["eyes"], 0.2, atol=1e-4)


def write_keras2_flat_model_file(model, path: Path) -> None:
    """A Keras 2 full-model .h5 of the seed's flat input, split with TFOpLambda slices Keras 3 cannot rebuild."""
    import json

    write_legacy_weights(model, path.with_suffix(".weights-only.h5"))
    config = {"class_name": "Functional", "config": {"name": "seed", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 5762], "name": "input_1"}},
        {"class_name": "TFOpLambda", "config": {"name": "tf.__operators__.getitem",
                                                 "function": "__operators__.getitem"}}]}}
    with h5py.File(path, "w") as handle, h5py.File(path.with_suffix(".weights-only.h5"), "r") as weights:
        handle.attrs["model_config"] = json.dumps(config)
        weights.copy(weights["/"], handle, name="model_weights")
        for key, value in weights.attrs.items():
            handle["model_weights"].attrs[key] = value


def test_unloadable_h5_model_falls_back_to_its_seed_weights(settings, factory, tmp_path):
    model = seeded_model("eyes")
    write_keras2_flat_model_file(model, tmp_path / "seed_eyes.h5")
    result = invoke("models", "import", "eyes", str(tmp_path / "seed_eyes.h5"))
    assert result.exit_code == 0, result.output
    record = stored(factory, "eyes")
    assert record.metrics["format"] == "h5-weights"
    inputs = sample_inputs("eyes")
    np.testing.assert_allclose(run(load_stored(record), inputs), run(model, inputs), atol=1e-6)

    refused = invoke("models", "import", "mouth", str(tmp_path / "seed_eyes.h5"))
    assert refused.exit_code == 1 and "Keras cannot load" in refused.output
    assert "Its weights do not fit either" in refused.output and "Received: shape=" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
