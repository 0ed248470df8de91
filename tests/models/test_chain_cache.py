"""The chain kept converted for XNNPACK in the home: named by what it computes, run later without Keras or
TensorFlow, converted again when damaged, never an error when the home cannot keep it; and the few chains a
process keeps in memory."""

import gc
import json
import logging
import os
import subprocess
import sys
import weakref
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from annotator.models import chain as chain_module
from annotator.models import lite
from annotator.models.chain import LoadedModel, converted_chain_path, load_chain, prepare_chain, run_chain
from annotator.models.graph import ChainGraph
from annotator.models.lite import LiteChain
from annotator.models.specs import REGISTRY
from annotator.models.store import CHANNEL_ORDER_BGR, active_chain_versions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_process(monkeypatch):
    """Models and runners made anew in this test, as in a new process."""
    monkeypatch.setattr(chain_module, "_models", chain_module._Recent())
    monkeypatch.setattr(chain_module, "_made", chain_module._Recent())


def _faces(count: int) -> np.ndarray:
    return np.random.default_rng(9).integers(0, 256, (count, 120, 120, 3), dtype=np.uint8)


def _chain(factory, settings):
    with factory() as session:
        return load_chain(active_chain_versions(session), settings.home)


def _tensorflow_outputs(chain, faces):
    return ChainGraph([model.member for model in chain], xnnpack=False)(faces)


def _never_loaded() -> None:
    raise AssertionError("the Keras model was loaded")


def test_the_path_names_the_model_files_and_channel_orders_and_nothing_else():
    gender = LoadedModel(REGISTRY["gender"], 1, "gender@1", _never_loaded, sha256="a" * 64)
    eyes = LoadedModel(REGISTRY["eyes"], 2, "eyes@1", _never_loaded, sha256="b" * 64)
    path = converted_chain_path([gender, eyes])
    assert path.parent == Path(os.environ["ANNOTATE_HOME"]) / "cache" and path.suffix == ".tflite"
    assert converted_chain_path([gender, eyes]) == path  # the same chain in another process
    other_ids = [LoadedModel(REGISTRY["gender"], 7, "gender@3", _never_loaded, sha256="a" * 64), eyes]
    assert converted_chain_path(other_ids) == path  # the same files registered again
    retrained = LoadedModel(REGISTRY["eyes"], 3, "eyes@2", _never_loaded, sha256="c" * 64)
    bgr = LoadedModel(REGISTRY["eyes"], 2, "eyes@1", _never_loaded, CHANNEL_ORDER_BGR, sha256="b" * 64)
    assert len({path, converted_chain_path([gender, retrained]), converted_chain_path([gender, bgr])}) == 3
    in_memory = LoadedModel(REGISTRY["eyes"], 0, "eyes@demo", _never_loaded)
    bfloat16 = LoadedModel(REGISTRY["eyes"], 2, "eyes@1", _never_loaded, sha256="b" * 64, precision="bfloat16")
    assert converted_chain_path([gender, in_memory]) is None
    assert converted_chain_path([gender, bfloat16]) is None


def test_the_chain_is_kept_converted_and_a_new_process_runs_it_without_keras_or_tensorflow(
        factory, settings, untrained_chain, fresh_process, tmp_path):
    faces = _faces(70)
    chain = _chain(factory, settings)
    outputs = run_chain(chain, faces)
    path = converted_chain_path(chain)
    assert path.read_bytes()[4:8] == b"TFL3"
    for name, values in _tensorflow_outputs(chain, faces).items():
        np.testing.assert_allclose(outputs[name], values, atol=1e-5)
    np.save(tmp_path / "faces.npy", faces)
    script = f"""
import json, sys
import numpy as np
from annotator.models.chain import load_chain, run_chain
from annotator.models.store import active_chain_versions
from annotator.settings import Settings
from db.session import make_engine, make_session_factory

settings = Settings.from_env()
with make_session_factory(make_engine(settings.database_url))() as session:
    chain = load_chain(active_chain_versions(session), settings.home)
outputs = run_chain(chain, np.load({str(tmp_path / 'faces.npy')!r}))
np.savez({str(tmp_path / 'outputs.npz')!r}, **outputs)
print(json.dumps(sorted(name for name in ("tensorflow", "keras") if name in sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", script], check=False, cwd=ROOT, env=os.environ,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []  # neither imported
    later = np.load(tmp_path / "outputs.npz")
    for name, values in outputs.items():
        np.testing.assert_array_equal(later[name], values)


def test_a_damaged_converted_chain_is_converted_again(factory, settings, untrained_chain, fresh_process, caplog):
    faces = _faces(5)
    chain = _chain(factory, settings)
    path = converted_chain_path(chain)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING, logger="annotator.models.lite"):
        outputs = run_chain(chain, faces)
    assert "Converting the chain again" in caplog.text
    assert isinstance(prepare_chain(chain), LiteChain)
    assert path.read_bytes()[4:8] == b"TFL3"
    for name, values in _tensorflow_outputs(chain, faces).items():
        np.testing.assert_allclose(outputs[name], values, atol=1e-5)


def test_a_home_that_cannot_keep_it_still_runs_the_chain_on_xnnpack(factory, settings, untrained_chain,
                                                                     fresh_process, tmp_path, monkeypatch, caplog):
    chain = _chain(factory, settings)
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ANNOTATE_HOME", str(blocker))
    with caplog.at_level(logging.WARNING, logger="annotator.models.lite"):
        outputs = run_chain(chain, _faces(3))
    assert "The chain is not cached" in caplog.text
    assert isinstance(prepare_chain(chain), LiteChain)
    assert outputs["gender"].shape == (3, 2)


def test_a_chain_tensorflow_lite_cannot_convert_runs_on_tensorflow_and_is_not_kept(
        factory, settings, untrained_chain, fresh_process, monkeypatch, caplog):
    def refuse(self):
        raise ValueError("unsupported operation")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "convert", refuse)
    faces = _faces(3)
    chain = _chain(factory, settings)
    with caplog.at_level(logging.WARNING, logger="annotator.models.lite"):
        outputs = run_chain(chain, faces)
    assert "TensorFlow Lite could not convert it (ValueError: unsupported operation)" in caplog.text
    runner = prepare_chain(chain)
    assert isinstance(runner, ChainGraph) and runner.engine == "tensorflow"
    assert not converted_chain_path(chain).exists()
    for name, values in _tensorflow_outputs(chain, faces).items():
        np.testing.assert_array_equal(outputs[name], values)


def test_the_tensorflow_engine_neither_converts_nor_keeps(factory, settings, untrained_chain, fresh_process):
    chain = _chain(factory, settings)
    runner = prepare_chain(chain, "tensorflow")
    assert isinstance(runner, ChainGraph) and runner.engine == "tensorflow"
    run_chain(chain, _faces(2), engine="tensorflow")
    assert not converted_chain_path(chain).exists()


def test_a_home_keeps_the_chains_used_last(factory, settings, untrained_chain, fresh_process, monkeypatch):
    chain = _chain(factory, settings)
    path = converted_chain_path(chain)
    path.parent.mkdir(parents=True)
    others = [path.with_name(f"chain-{index:032d}.tflite") for index in range(lite.KEPT_CHAINS + 2)]
    for age, other in enumerate(others):
        other.write_bytes(b"a chain of another version")
        os.utime(other, (1_000_000 - age, 1_000_000 - age))  # others[0] used last
    mtcnn = path.with_name("mtcnn-1-tensorflow-2")
    mtcnn.mkdir()
    run_chain(chain, _faces(2))
    kept = sorted(path.parent.iterdir())
    assert kept == sorted([mtcnn, path, *others[: lite.KEPT_CHAINS - 1]])


def test_a_process_keeps_only_the_chains_it_used_last(fresh_process, settings):
    def versions(number: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(id=number, sha256=f"{number:064x}", name="gender", label=f"gender-v{number}",
                                input_spec={})]

    first = load_chain(versions(0), settings.home)
    gone = weakref.ref(first[0])
    assert load_chain(versions(0), settings.home) is first  # the same objects while kept
    for number in range(1, chain_module.KEPT_CHAINS + 1):
        last = load_chain(versions(number), settings.home)
    assert load_chain(versions(chain_module.KEPT_CHAINS), settings.home) is last
    del first
    gc.collect()
    assert gone() is None  # the chain used longest ago was let go

