"""Run the gender-then-attributes chain on a batch of canonical faces.

Models are loaded once per process and cached by the ids and hashes of their versions, and the whole chain is
compiled into one function (:mod:`annotator.models.graph`); TensorFlow is imported only when the first chain is
loaded, so importing this module stays cheap and fork-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotator.models.graph import ChainGraph, in_precision
from annotator.models.specs import ModelSpec, OutputKind, get_spec
from annotator.models.store import CHANNEL_ORDER_BGR, CHANNEL_ORDER_RGB, load_keras_model
from annotator.settings import DEFAULT_CHAIN_ENGINE, DEFAULT_PRECISION
from db.models import ModelVersion


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model of the chain, ready to run, with the version it came from."""

    spec: ModelSpec
    version_id: int
    label: str
    model: Any  # a Keras model, in the precision it was loaded for
    channel_order: str = CHANNEL_ORDER_RGB

    @property
    def member(self) -> tuple[ModelSpec, Any, bool]:
        """What the compiled graph needs of it."""
        return self.spec, self.model, self.channel_order == CHANNEL_ORDER_BGR


_models: dict[tuple[str, tuple[tuple[int, str], ...]], list[LoadedModel]] = {}
# Keyed by the models themselves (compared by identity), which the key keeps alive: an id could be reused.
_graphs: dict[tuple[bool, bool, tuple[LoadedModel, ...]], ChainGraph] = {}


def load_chain(versions: Sequence[ModelVersion], home: Path, *, precision: str = DEFAULT_PRECISION) -> list[LoadedModel]:
    """Load (once per process) the models of ``versions``, given in chain order, from the store under ``home``,
    to run in ``precision`` (``float32``, ``bfloat16`` or ``float16``)."""
    key = (precision, tuple((v.id, v.sha256) for v in versions))
    if key not in _models:
        _models[key] = [
            LoadedModel(get_spec(v.name), v.id, v.label, in_precision(load_keras_model(v, home), precision),
                        v.input_spec.get("channel_order", CHANNEL_ORDER_RGB))
            for v in versions
        ]
    return _models[key]


def _graph(chain: Sequence[LoadedModel], *, gender_given: bool, xnnpack: bool = True) -> ChainGraph:
    key = (gender_given, xnnpack, tuple(chain))
    if key not in _graphs:
        _graphs[key] = ChainGraph([model.member for model in chain], gender_given=gender_given, xnnpack=xnnpack)
    return _graphs[key]


def run_chain(chain: Sequence[LoadedModel], faces: np.ndarray, *,
              engine: str = DEFAULT_CHAIN_ENGINE) -> dict[str, np.ndarray]:
    """Outputs of every model for ``faces`` (n, 120, 120, 3), uint8 or float in 0..1: gender (n, 2), each
    attribute (n,); one compiled call per batch, on ``engine`` where it applies (see ``CHAIN_ENGINES``)."""
    return _graph(chain, gender_given=False, xnnpack=engine == "xnnpack")(faces)


def predict_attribute(model: LoadedModel, faces: np.ndarray, gender: np.ndarray | None) -> np.ndarray:
    """Outputs of one model for ``faces``: (n, 2) for gender, (n,) for a regressor given ``gender`` (n, 2)."""
    if model.spec.output is OutputKind.GENDER_SOFTMAX or not model.spec.takes_gender:
        return _graph([model], gender_given=False)(faces)[model.spec.name]
    if gender is None:
        raise ValueError(f"Model {model.spec.name!r} needs gender probabilities; gender must run first.")
    return _graph([model], gender_given=True)(faces, gender)[model.spec.name]
