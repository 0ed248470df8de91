"""Run the gender-then-attributes chain on a batch of canonical faces.

Models are loaded once per process and cached by the ids and hashes of their versions (the few chains used
last), and the whole chain is compiled into one function (:mod:`annotator.models.graph`); TensorFlow is imported
only when a chain is first compiled, so importing this module stays cheap and fork-safe.

Where a float32 chain runs on XNNPACK (:mod:`annotator.models.lite`), its converted model is kept under
``ANNOTATE_HOME/cache``, named by the hashes of the model files, their channel orders and the code that builds
the graph: a later process runs the chain from that file without loading Keras or, where no GPU driver is
installed, importing TensorFlow.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from annotator.models.graph import ChainGraph, in_precision
from annotator.models.lite import lite_chain, xnnpack_applies, xnnpack_applies_early
from annotator.models.specs import ModelSpec, OutputKind, get_spec
from annotator.models.store import CHANNEL_ORDER_BGR, CHANNEL_ORDER_RGB, load_keras_model
from annotator.settings import DEFAULT_CHAIN_ENGINE, DEFAULT_PRECISION, home_from_env
from db.models import ModelVersion

_GRAPH_CODE = ("graph.py", "lite.py", "specs.py")
"""The modules whose code decides what a converted chain computes: a change to one converts chains again."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model of the chain, ready to run, with the version it came from; its Keras model is loaded on first use
    (``keras()``), which a chain run from its converted model never needs."""

    spec: ModelSpec
    version_id: int
    label: str
    keras: Callable[[], Any]  # the Keras model, in the precision it runs in
    channel_order: str = CHANNEL_ORDER_RGB
    sha256: str | None = None  # of the stored file; None for a model held only in memory
    precision: str = DEFAULT_PRECISION

    @cached_property
    def model(self) -> Any:
        """The Keras model, loaded once."""
        return self.keras()

    @property
    def member(self) -> tuple[ModelSpec, Any, bool]:
        """What the compiled graph needs of it."""
        return self.spec, self.model, self.channel_order == CHANNEL_ORDER_BGR


KEPT_CHAINS = 4
"""Chains a process keeps ready, most recently used first: the active chain, the ones jobs recorded before an
activation still name, and the single models ``predict_attribute`` runs. Older ones are let go, so a worker that
lives through many retrained chains (or a test session that makes one per test) does not grow without bound."""


class _Recent(OrderedDict[Any, Any]):
    """A mapping that keeps only its :data:`KEPT_CHAINS` most recently used keys."""

    def made(self, key: Any, make: Callable[[], Any]) -> Any:
        """The value of ``key``, made now if it is not kept; ``key`` becomes the most recent."""
        if key in self:
            self.move_to_end(key)
        else:
            self[key] = make()
            while len(self) > KEPT_CHAINS:
                self.popitem(last=False)
        return self[key]


_models = _Recent()
# Keyed by the models themselves (compared by identity), which the key keeps alive: an id could be reused.
# Each value holds what was made for that chain: its compiled graphs and what runs uint8 faces through it.
_made = _Recent()


def load_chain(versions: Sequence[ModelVersion], home: Path, *, precision: str = DEFAULT_PRECISION) -> list[LoadedModel]:
    """The models of ``versions``, given in chain order, from the store under ``home``, to run in ``precision``
    (``float32``, ``bfloat16`` or ``float16``); the same objects for the same versions while they are kept."""
    key = (precision, tuple((v.id, v.sha256) for v in versions))
    return _models.made(key, lambda: [  # type: ignore[no-any-return]
        LoadedModel(get_spec(v.name), v.id, v.label,
                    lambda v=v: in_precision(load_keras_model(v, home), precision),
                    v.input_spec.get("channel_order", CHANNEL_ORDER_RGB), v.sha256, precision)
        for v in versions
    ])


def _made_for(chain: Sequence[LoadedModel], variant: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    made = _made.made(tuple(chain), dict)
    if variant not in made:
        made[variant] = make()
    return made[variant]


def converted_chain_path(chain: Sequence[LoadedModel]) -> Path | None:
    """Where ``chain`` is kept converted for XNNPACK, or None for a chain that is not (one in another precision
    than float32, or with a model held only in memory)."""
    if any(model.sha256 is None or model.precision != DEFAULT_PRECISION for model in chain):
        return None
    digest = hashlib.sha256()
    for name in _GRAPH_CODE:
        digest.update(Path(__file__).with_name(name).read_bytes())
    for model in chain:
        digest.update(f"{model.spec.name}:{model.sha256}:{model.channel_order}\n".encode())
    return home_from_env() / "cache" / f"chain-{digest.hexdigest()[:32]}.tflite"


def _graph(chain: Sequence[LoadedModel], *, gender_given: bool, xnnpack: bool = True) -> ChainGraph:
    return _made_for(chain, ("graph", gender_given, xnnpack),  # type: ignore[no-any-return]
                     lambda: ChainGraph([model.member for model in chain], gender_given=gender_given, xnnpack=xnnpack))


def _new_uint8_runner(chain: Sequence[LoadedModel], engine: str) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    path = converted_chain_path(chain) if engine == "xnnpack" else None
    if path is not None and (xnnpack_applies_early() or xnnpack_applies()):
        converted = lite_chain(path, lambda: _graph(chain, gender_given=False, xnnpack=False).lite_model())
        if converted is not None:
            return converted
    # A chain that is not kept (in memory, or not float32) lets its graph decide; a kept one was tried already.
    return _graph(chain, gender_given=False, xnnpack=path is None and engine == "xnnpack")


def prepare_chain(chain: Sequence[LoadedModel], engine: str = DEFAULT_CHAIN_ENGINE
                  ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """What runs uint8 faces through ``chain`` on ``engine`` (see ``CHAIN_ENGINES``), made once per process: the
    converted model kept in the home's cache (loaded, or converted and kept), or the compiled graph."""
    return _made_for(chain, ("uint8", engine), lambda: _new_uint8_runner(chain, engine))  # type: ignore[no-any-return]


def run_chain(chain: Sequence[LoadedModel], faces: np.ndarray, *,
              engine: str = DEFAULT_CHAIN_ENGINE) -> dict[str, np.ndarray]:
    """Outputs of every model for ``faces`` (n, 120, 120, 3), uint8 or float in 0..1: gender (n, 2), each
    attribute (n,); one compiled call per batch, on ``engine`` where it applies (see ``CHAIN_ENGINES``)."""
    faces = np.asarray(faces)
    if faces.dtype == np.uint8:
        return prepare_chain(chain, engine)(faces)
    return _graph(chain, gender_given=False)(faces)


def predict_attribute(model: LoadedModel, faces: np.ndarray, gender: np.ndarray | None) -> np.ndarray:
    """Outputs of one model for ``faces``: (n, 2) for gender, (n,) for a regressor given ``gender`` (n, 2)."""
    if model.spec.output is OutputKind.GENDER_SOFTMAX or not model.spec.takes_gender:
        return _graph([model], gender_given=False)(faces)[model.spec.name]
    if gender is None:
        raise ValueError(f"Model {model.spec.name!r} needs gender probabilities; gender must run first.")
    return _graph([model], gender_given=True)(faces, gender)[model.spec.name]
