"""The model store: versioned model files under ``ANNOTATE_HOME/models``, recorded in ``model_versions``.

A file under the home is recorded by its path relative to the home (``models/gender/gender-v1.keras``), so a home
moved elsewhere (a restored backup, a volume mounted at another path) keeps every model working; a file outside
the home keeps its absolute path.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from annotator.errors import ModelStoreError, NoActiveModelError, UnknownVersionError
from annotator.models.specs import ModelSpec, chain_order, optional_specs
from annotator.tf_runtime import import_tensorflow
from db.models import ModelVersion

if TYPE_CHECKING:
    import keras

CHANNEL_ORDER_RGB = "RGB"
CHANNEL_ORDER_BGR = "BGR"  # what models trained on OpenCV-read images (the seed project's) expect
CHANNEL_ORDERS = (CHANNEL_ORDER_RGB, CHANNEL_ORDER_BGR)
MODELS_FOLDER = "models"  # the store's folder inside ANNOTATE_HOME


def stored_path(path: Path, home: Path) -> str:
    """How a model file is recorded: relative to ``home`` (POSIX separators) when it lies under it, else absolute."""
    path, home = path.resolve(), home.expanduser().resolve()
    return path.relative_to(home).as_posix() if path.is_relative_to(home) else str(path)


def model_file(record: ModelVersion, home: Path) -> Path:
    """The file of a stored version: its recorded path, relative paths taken from ``home``."""
    path = Path(record.path)
    return path if path.is_absolute() else home.expanduser() / path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_spec_of(spec: ModelSpec, channel_order: str = CHANNEL_ORDER_RGB) -> dict[str, Any]:
    """What a stored model expects, recorded with its version."""
    box = spec.crop
    return {
        "crop": [box.top, box.bottom, box.left, box.right],
        "input_shape": list(spec.input_shape),
        "output": spec.output.value,
        "requires": list(spec.requires),
        "channel_order": channel_order,
        "scale": "0..1",
    }


def register_model(
    session: Session,
    home: Path,
    spec: ModelSpec,
    model: keras.Model,
    *,
    metrics: dict[str, Any],
    is_demo: bool = False,
    activate: bool = True,
    channel_order: str = CHANNEL_ORDER_RGB,
) -> ModelVersion:
    """Save ``model`` under ``home``'s store as the next version of ``spec`` and record it (optionally active)."""
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"Channel order must be one of {', '.join(CHANNEL_ORDERS)}. Received: {channel_order!r}.")
    version = (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == spec.name)) or 0) + 1
    folder = home.expanduser() / MODELS_FOLDER / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{spec.name}-v{version}.keras"
    # Save under a temporary name first so a crash never leaves a half-written file at a registered path.
    handle, temporary = tempfile.mkstemp(suffix=".keras", dir=folder)
    os.close(handle)
    model.save(temporary)
    os.replace(temporary, target)
    record = ModelVersion(
        name=spec.name,
        version=version,
        path=stored_path(target, home),
        sha256=file_sha256(target),
        input_spec=input_spec_of(spec, channel_order),
        metrics=metrics,
        is_demo=is_demo,
    )
    session.add(record)
    session.flush()
    if activate:
        activate_version(session, spec.name, version)
    return record


def list_versions(session: Session) -> list[ModelVersion]:
    """Every stored version, by name then version."""
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)))


def get_version(session: Session, name: str, version: int) -> ModelVersion:
    """The stored ``name@version``, or :class:`UnknownVersionError`."""
    record = session.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version))
    if record is None:
        raise UnknownVersionError(f"No stored model {name}@{version}. See `annotate models list`.")
    return record


def active_version(session: Session, name: str) -> ModelVersion | None:
    """The active version of ``name``, or None when none is active."""
    return session.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.active.is_(True)))


def activate_version(session: Session, name: str, version: int) -> ModelVersion:
    """Make ``name@version`` the one the chain runs; any other version of ``name`` becomes inactive."""
    record = get_version(session, name, version)
    session.execute(update(ModelVersion).where(ModelVersion.name == name).values(active=False))
    record.active = True
    session.flush()
    return record


def active_chain_versions(session: Session) -> list[ModelVersion]:
    """The active version of every required model of the chain, plus active optional ones, in chain order."""
    active = {mv.name: mv for mv in session.scalars(select(ModelVersion).where(ModelVersion.active.is_(True)))}
    missing = [spec.name for spec in chain_order() if spec.name not in active]
    if missing:
        raise NoActiveModelError(
            f"No active model for {', '.join(missing)}. Train the starter models with `annotate models demo` "
            "or activate a stored version with `annotate models activate NAME VERSION`."
        )
    required = [spec.name for spec in chain_order()]
    # Optional models (identity) run only while a version is active; without one the chain is unchanged.
    extra = [spec.name for spec in optional_specs() if spec.name in active]
    return [active[spec.name] for spec in chain_order(required + extra)]


def load_keras_model(record: ModelVersion, home: Path) -> keras.Model:
    """Load a stored version (relative paths from ``home``) after checking its file is the one registered."""
    path = model_file(record, home)
    if not path.exists():
        raise ModelStoreError(f"The file of {record.label} is missing: {path}.")
    if file_sha256(path) != record.sha256:
        raise ModelStoreError(f"The file of {record.label} changed since it was registered: {path}.")
    import_tensorflow()
    import keras

    try:
        # safe_mode refuses to deserialise arbitrary code (Lambda layers) from the file.
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad file; all mean the same to the user.
        raise ModelStoreError(f"Could not load {record.label} from {path}: {error}") from error
