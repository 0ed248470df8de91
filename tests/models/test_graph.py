import sys

import numpy as np
import pytest
import tensorflow as tf

from annotator.models import lite
from annotator.models.chain import load_chain, predict_attribute, run_chain
from annotator.models.crops import crop_batch
from annotator.models.graph import INFERENCE_BATCH, ChainGraph, crop_tensor
from annotator.models.specs import REGISTRY, OutputKind
from annotator.models.store import active_chain_versions


def _faces(count: int) -> np.ndarray:
    return np.random.default_rng(4).integers(0, 256, (count, 120, 120, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_the_graph_cuts_the_crops_numpy_cuts(name):
    faces = _faces(3).astype(np.float32) / 255.0
    np.testing.assert_allclose(np.asarray(crop_tensor(tf.constant(faces), REGISTRY[name])), crop_batch(faces, REGISTRY[name]),
                               atol=1e-5)


def _model_by_model(chain, faces: np.ndarray) -> dict[str, np.ndarray]:
    """The chain as it ran before it was one graph: NumPy crops, float faces, one Keras call per model."""
    floats = faces.astype(np.float32) / 255.0
    outputs, gender = {}, None
    for model in chain:
        crop = crop_batch(floats, model.spec)
        if model.spec.output is OutputKind.GENDER_SOFTMAX:
            gender = outputs[model.spec.name] = np.asarray(model.model(crop, training=False))
        else:
            outputs[model.spec.name] = np.asarray(model.model([crop, gender], training=False))[:, 0]
    return outputs


def test_one_graph_gives_what_model_after_model_gave(factory, settings, untrained_chain):
    faces = _faces(INFERENCE_BATCH + 44)  # two calls of the compiled function
    with factory() as session:
        chain = load_chain(active_chain_versions(session), settings.home)
    outputs = run_chain(chain, faces)
    expected = _model_by_model(chain, faces)
    assert set(outputs) == set(expected) == {m.spec.name for m in chain}
    for name, values in expected.items():
        assert outputs[name].dtype == np.float32
        np.testing.assert_allclose(outputs[name], values, atol=1e-5)
    floats = run_chain(chain, faces.astype(np.float32) / 255.0)  # callers holding float faces get the same
    for name, values in outputs.items():
        np.testing.assert_allclose(floats[name], values, atol=1e-6)
    eyes = next(m for m in chain if m.spec.name == "eyes")
    np.testing.assert_allclose(predict_attribute(eyes, faces, outputs["gender"]), outputs["eyes"], atol=1e-6)
    empty = run_chain(chain, faces[:0])
    assert empty["gender"].shape == (0, 2) and empty["eyes"].shape == (0,)


def test_bfloat16_stays_within_a_hundredth_of_float32(factory, settings, untrained_chain):
    faces = _faces(64)
    with factory() as session:
        versions = active_chain_versions(session)
    exact = run_chain(load_chain(versions, settings.home), faces)
    fast_chain = load_chain(versions, settings.home, precision="bfloat16")
    assert {layer.dtype_policy.compute_dtype for layer in fast_chain[0].model.layers[1:]} == {"bfloat16"}
    fast = run_chain(fast_chain, faces)
    for name, values in exact.items():
        assert fast[name].dtype == np.float32
        assert np.abs(fast[name] - values).max() < 0.01, name


def _members(chain) -> list:
    return [model.member for model in chain]


def test_uint8_faces_run_on_xnnpack_with_the_outputs_of_tensorflow(factory, settings, untrained_chain):
    faces = _faces(INFERENCE_BATCH + lite.BATCH + 5)  # interpreter calls of two sizes, then a graph call of 69
    with factory() as session:
        chain = load_chain(active_chain_versions(session), settings.home)
    xnnpack, tensorflow = ChainGraph(_members(chain)), ChainGraph(_members(chain), xnnpack=False)
    assert (xnnpack.engine, tensorflow.engine) == ("xnnpack", "tensorflow")
    fast, exact = xnnpack(faces), tensorflow(faces)
    assert set(fast) == set(exact)
    for name, values in exact.items():
        assert fast[name].dtype == np.float32 and fast[name].shape == values.shape
        assert values.std() > 1e-3, name  # faces tell apart, so equal outputs mean equal computations
        np.testing.assert_allclose(fast[name], values, atol=1e-5)
    assert run_chain(chain, faces[:0])["gender"].shape == (0, 2)


def test_bfloat16_and_one_regressor_alone_stay_on_tensorflow(factory, settings, untrained_chain):
    with factory() as session:
        versions = active_chain_versions(session)
    assert ChainGraph(_members(load_chain(versions, settings.home, precision="bfloat16"))).engine == "tensorflow"
    eyes = next(m for m in load_chain(versions, settings.home) if m.spec.name == "eyes")
    assert ChainGraph([eyes.member], gender_given=True).engine == "tensorflow"


def test_a_chain_tensorflow_lite_cannot_convert_runs_on_tensorflow_and_says_why(factory, settings, untrained_chain,
                                                                                 monkeypatch, caplog):
    def refuse(self):
        raise ValueError("unsupported operation\nmore detail")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "convert", refuse)
    faces = _faces(3)
    with factory() as session:
        chain = load_chain(active_chain_versions(session), settings.home)
    graph = ChainGraph(_members(chain))
    with caplog.at_level("WARNING", logger="annotator.models.lite"):
        outputs = graph(faces)
    assert graph.engine == "tensorflow"
    assert "TensorFlow Lite could not convert it (ValueError: unsupported operation)" in caplog.text
    expected = ChainGraph(_members(chain), xnnpack=False)(faces)
    for name, values in expected.items():
        np.testing.assert_array_equal(outputs[name], values)


def test_without_litert_the_chain_runs_on_tensorflow(factory, settings, untrained_chain, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails as if not installed
    with factory() as session:
        chain = load_chain(active_chain_versions(session), settings.home)
    assert ChainGraph(_members(chain)).engine == "tensorflow"
