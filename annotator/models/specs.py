"""Model specs: the chain is data.

Every model the service runs is one frozen :class:`ModelSpec` in :data:`REGISTRY`. Loading, the chain order,
training and exports are all derived from these specs, so a new attribute is a new spec plus weights.
Geometry and architectures follow the seed documents (``MODELS.md``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from annotator.errors import AnnotateError
from annotator.images.decoding import FACE_SIZE  # the canonical aligned face every crop is cut from

POOL = "pool"
"""Marker in :attr:`ModelSpec.conv_layers` for the (shared) 2x2 max-pool layer."""


class OutputKind(str, enum.Enum):
    """What a model's last layer produces."""

    GENDER_SOFTMAX = "gender_softmax"  # [male_prob, female_prob]
    UNIT_SIGMOID = "unit_sigmoid"  # one value in 0..1


@dataclass(frozen=True)
class Crop:
    """A rectangle of the 120x120 face: rows ``top:bottom``, cols ``left:right``."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the rectangle."""
        return (self.bottom - self.top, self.right - self.left)


WHOLE_FACE = Crop(0, FACE_SIZE, 0, FACE_SIZE)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the service needs to know about one model of the chain."""

    name: str
    crop: Crop
    input_size: tuple[int, int]  # (height, width) the crop is resized to, when it differs
    output: OutputKind
    conv_layers: tuple[int | str, ...] = ()
    dense_units: tuple[int, int] = (0, 0)
    requires: tuple[str, ...] = ()
    meaning: str = ""
    # Patience of the seed recipe's callbacks (ReduceLROnPlateau, EarlyStopping).
    lr_patience: int = 2
    stop_patience: int = 5
    # An optional model joins the chain only while one of its versions is active.
    optional: bool = False
    # True for a yes/no classifier (labels 0 or 1, binary cross-entropy), False for a graded 0..1 value.
    binary: bool = False
    # None: the seed CNN family built from ``conv_layers``/``dense_units``; otherwise a pretrained backbone's name.
    backbone: str | None = None
    # Train on randomly flipped/shifted/zoomed/brightened copies, fresh each epoch (``annotator.training.augmentation``).
    augment: bool = False
    # Share of the rows held out as a TEST split, never seen by the callbacks that pick the epoch (0: none).
    test_split: float = 0.0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the image input."""
        return (*self.input_size, 3)

    @property
    def flat_input_size(self) -> int:
        """Length of the seed models' one flat input: the crop flattened (H*W*3), then the gender inputs."""
        height, width, channels = self.input_shape
        return height * width * channels + (2 if self.takes_gender else 0)

    @property
    def takes_gender(self) -> bool:
        """True when the model takes the two gender probabilities as a second input."""
        return "gender" in self.requires


GENDER = ModelSpec(
    name="gender",
    crop=WHOLE_FACE,
    input_size=(60, 60),
    output=OutputKind.GENDER_SOFTMAX,
    conv_layers=(32, 32, POOL, 64, POOL, 64, POOL, 64),
    dense_units=(256, 64),
    meaning="[male_prob, female_prob], a 2-way softmax",
    # ~1,400 faces are few for a CNN: augmentation is what lifts it to the seed's 95% (README, train section);
    # 15% of gender-60px is ~200 test faces, the size of the seed's own test set.
    augment=True,
    test_split=0.15,
    # The seed trained gender 30 epochs at a fixed rate. Its first epochs sit near chance (more so on
    # augmented batches), and the regressors' patience of 2 cut the rate to 1e-4 inside that plateau.
    lr_patience=4,
    stop_patience=8,
)
EYES = ModelSpec(
    name="eyes",
    crop=Crop(30, 62, 30, 90),
    input_size=(32, 60),
    output=OutputKind.UNIT_SIGMOID,
    conv_layers=(32, 48, POOL, 64, POOL, 96, 128),
    dense_units=(320, 120),
    requires=("gender",),
    meaning="1.0 fully open, 0.5 partly open, 0.0 closed",
    lr_patience=3,
    stop_patience=7,
)
MOUTH = ModelSpec(
    name="mouth",
    crop=Crop(60, 120, 30, 90),
    input_size=(60, 60),
    output=OutputKind.UNIT_SIGMOID,
    conv_layers=(32, 32, POOL, 64, POOL, 64, 64),
    dense_units=(256, 64),
    requires=("gender",),
    meaning="1.0 wide open, 0.5 slightly open, 0.0 closed",
)
BACKGROUND_MEAN = ModelSpec(
    name="background_mean",
    crop=WHOLE_FACE,
    input_size=(120, 120),
    output=OutputKind.UNIT_SIGMOID,
    conv_layers=(32, 32, POOL, 64, POOL, 64, POOL, 64),
    dense_units=(256, 64),
    requires=("gender",),
    meaning="1.0 bright background, 0.5 mid-tone, 0.0 as dark as hair or darker",
)

IDENTITY = ModelSpec(
    name="identity",
    crop=WHOLE_FACE,
    input_size=(224, 224),
    output=OutputKind.UNIT_SIGMOID,
    meaning="probability that the face is the person the model was trained on (the 'Face' seed)",
    stop_patience=5,
    optional=True,
    binary=True,
    backbone="mobilenet_v2",
)

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in (GENDER, EYES, MOUTH, BACKGROUND_MEAN, IDENTITY)}


class UnknownModelError(AnnotateError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:
        # KeyError's own __str__ quotes its message; the CLI prints this one as a sentence.
        return str(self.args[0])


def get_spec(name: str) -> ModelSpec:
    """Return the spec called ``name`` or raise :class:`UnknownModelError` naming the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise UnknownModelError(f"Unknown model {name!r}. Known models: {known}.") from None


def chain_order(names: list[str] | None = None) -> list[ModelSpec]:
    """Specs in an order where every model comes after the models it requires (by default the required ones)."""
    wanted = [name for name, spec in REGISTRY.items() if not spec.optional] if names is None else names
    ordered: list[ModelSpec] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        spec = get_spec(name)
        if spec in ordered:
            return
        if name in visiting:
            raise ValueError(f"Model specs form a cycle through {name!r}.")
        visiting.add(name)
        for dependency in spec.requires:
            visit(dependency)
        visiting.discard(name)
        ordered.append(spec)

    for name in wanted:
        visit(name)
    return ordered


def optional_specs() -> list[ModelSpec]:
    """Specs that join the chain only when a version of them is active (e.g. identity)."""
    return [spec for spec in REGISTRY.values() if spec.optional]


def attribute_names(*, include_optional: bool = False) -> list[str]:
    """Names of the single-value attributes (everything but the gender classifier), in chain order."""
    specs = chain_order(list(REGISTRY)) if include_optional else chain_order()
    return [spec.name for spec in specs if spec.output is OutputKind.UNIT_SIGMOID]
