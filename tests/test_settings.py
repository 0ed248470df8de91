import os

import pytest

from annotator.settings import Settings


def test_extraction_uses_every_cpu_unless_told_otherwise():
    assert Settings.from_env({}).decode_workers == len(os.sched_getaffinity(0))
    assert Settings.from_env({"ANNOTATE_DECODE_WORKERS": "3"}).decode_workers == 3


@pytest.mark.parametrize(("raw", "message"), [("0", "at least 1"), ("two", "whole number")])
def test_a_bad_worker_count_is_one_clear_sentence(raw, message):
    with pytest.raises(ValueError, match=f"ANNOTATE_DECODE_WORKERS must be .*{message}"):
        Settings.from_env({"ANNOTATE_DECODE_WORKERS": raw})


def test_precision_is_float32_unless_asked_and_checked():
    assert Settings.from_env({}).precision == "float32"
    assert Settings.from_env({"ANNOTATE_PRECISION": "BFloat16"}).precision == "bfloat16"
    with pytest.raises(ValueError, match="ANNOTATE_PRECISION must be one of float32, bfloat16, float16"):
        Settings.from_env({"ANNOTATE_PRECISION": "int8"})


def test_the_chain_engine_is_xnnpack_unless_asked_and_checked():
    assert Settings.from_env({}).chain_engine == "xnnpack"
    assert Settings.from_env({"ANNOTATE_CHAIN_ENGINE": "TensorFlow"}).chain_engine == "tensorflow"
    with pytest.raises(ValueError, match="ANNOTATE_CHAIN_ENGINE must be one of xnnpack, tensorflow"):
        Settings.from_env({"ANNOTATE_CHAIN_ENGINE": "onnx"})
