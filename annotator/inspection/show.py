"""``annotate show``: find an image's faces the way a job does and collect what the models said about each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import NoActiveModelError, UnknownImageError
from annotator.faces.extraction import ExtractedFace, ImageToExtract, extract_faces, faces_in_photo
from annotator.faces.modes import FaceMode, FaceOptions
from annotator.faces.sheet import SheetFace
from annotator.images.decoding import MAX_IMAGE_PIXELS, DecodeError, decode_photo, read_failure
from annotator.images.discovery import hash_file, hash_location
from annotator.images.sources import is_uri, name_of, normalised
from annotator.jobs.pipeline import recorded_detections
from annotator.models.provenance import computed_by
from annotator.models.specs import OutputKind
from db.models import Face, Image, Label, ModelVersion, Prediction

_SHA_PREFIX = re.compile(r"[0-9a-f]{6,64}")


@dataclass(frozen=True)
class ShownImage:
    """An image with its faces ready to draw, and where their values came from."""

    path: Path | str  # a str is a URI
    sha256: str
    photo: PILImage.Image  # upright RGB
    faces: list[SheetFace]

    @property
    def name(self) -> str:
        """The file or object name, without its folder or prefix."""
        return name_of(str(self.path))


def _resolve_uri(uri: str) -> tuple[str, str]:
    try:
        sha256, _, fmt = hash_location(uri)
    except Exception as error:  # noqa: BLE001 - a store client raises its own errors too
        failure = read_failure(error, uri)
        raise UnknownImageError(f"{uri} cannot be read ({failure.reason.value}): {failure.detail}.") from None
    if fmt is None:
        raise UnknownImageError(f"{uri} is not an image (its content is not a known image format).")
    return normalised(uri), sha256


def resolve_image(session: Session, target: str) -> tuple[Path | str, str]:
    """(path, sha256) of an image given as a file path, a URI (``s3://bucket/photo.jpg``) or as (a prefix of)
    the sha256 of an annotated image."""
    if is_uri(target):
        return _resolve_uri(target)
    path = Path(target).expanduser()
    if path.is_file():
        sha256, _, fmt = hash_file(path)
        if fmt is None:
            raise UnknownImageError(f"{path} is not an image (its content is not a known image format).")
        return path, sha256
    if _SHA_PREFIX.fullmatch(target.lower()):
        matches = session.execute(select(Image.path, Image.sha256).where(Image.sha256.startswith(target.lower()))
                                  .limit(2)).all()
        if len(matches) > 1:
            raise UnknownImageError(f"More than one image's sha256 starts with {target}; give more characters.")
        if matches:
            recorded = matches[0].path
            return (recorded if is_uri(recorded) else Path(recorded)), matches[0].sha256
    raise UnknownImageError(f"No file {target} and no annotated image whose sha256 starts with it. "
                            "Give an image path, or a sha256 (6 characters or more) from `annotate export`.")


def _format(attribute: str, value: float, extra: dict | None, source: str) -> str:  # type: ignore[type-arg]
    if attribute == "gender":
        female = extra["female_prob"] if extra else 1.0 - value
        word = "female" if female >= 0.5 else "male"
        return f"gender  {word} {max(female, 1.0 - female):.2f}  ({source})"
    return f"{attribute}  {value:.2f}  ({source})"


def recorded_values(session: Session, image_id: int, method: str) -> dict[int, list[str]]:
    """Lines per face index: each attribute's label if any, else its prediction by the active (or newest) version."""
    faces = dict(session.execute(select(Face.id, Face.index).where(Face.image_id == image_id,
                                                                    Face.method == method)).all())
    chosen: dict[tuple[int, str], str] = {}
    predictions = session.execute(
        select(Prediction.face_id, Prediction.attribute, Prediction.value, Prediction.extra, ModelVersion)
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .where(Prediction.face_id.in_(faces))
        .order_by(ModelVersion.active.desc(), Prediction.created_at.desc())
    )
    for face_id, attribute, value, extra, version in predictions:
        chosen.setdefault((faces[face_id], attribute), _format(attribute, value, extra, computed_by(version.label, extra)))
    labels = session.execute(select(Label.face_id, Label.attribute, Label.value, Label.source)
                             .where(Label.face_id.in_(faces)).order_by(Label.created_at))
    for face_id, attribute, value, source in labels:  # the newest label wins, as on export
        chosen[(faces[face_id], attribute)] = _format(attribute, value, None, f"label: {source}")
    lines: dict[int, list[str]] = {}
    for (index, _), line in sorted(chosen.items()):
        lines.setdefault(index, []).append(line)
    return lines


def computed_values(session: Session, faces: list[ExtractedFace], home: Path) -> dict[int, list[str]]:
    """Lines per face index from running the active chain now (nothing is recorded)."""
    import numpy as np

    from annotator.models.chain import load_chain, run_chain
    from annotator.models.store import active_chain_versions

    try:
        chain = load_chain(active_chain_versions(session), home)
    except NoActiveModelError:
        return {face.index: ["no active models: `annotate models demo` trains starter ones"] for face in faces}
    outputs = run_chain(chain, np.stack([face.pixels for face in faces]))
    lines: dict[int, list[str]] = {}
    for row, face in enumerate(faces):
        for model in chain:
            value = outputs[model.spec.name][row]
            if model.spec.output is OutputKind.GENDER_SOFTMAX:
                male, female = float(value[0]), float(value[1])
                line = _format("gender", male, {"male_prob": male, "female_prob": female}, f"{model.label}, now")
            else:
                line = _format(model.spec.name, float(value), None, f"{model.label}, now")
            lines.setdefault(face.index, []).append(line)
    return lines


def show_image(session: Session, target: str, options: FaceOptions, *, home: Path,
               max_pixels: int = MAX_IMAGE_PIXELS) -> ShownImage:
    """The faces of ``target`` found as ``options`` says (recorded ones reused), each with its values; models
    not recorded for it run now, from the store under ``home``."""
    path, sha256 = resolve_image(session, target)
    image_id = session.scalar(select(Image.id).where(Image.sha256 == sha256))
    known = []
    if image_id is not None and options.mode is FaceMode.DETECT:
        known = recorded_detections(session, [image_id], options.method).get(image_id, [])
    try:
        photo = decode_photo(path, max_pixels=max_pixels, expected_sha256=sha256)
        if options.mode is FaceMode.DETECT:
            faces = faces_in_photo(photo, options, known)
        else:  # decoded again the way a job decodes a portrait (reduced JPEG draft), so the pixels match
            faces = extract_faces(ImageToExtract(path, sha256), options, max_pixels=max_pixels)
    except DecodeError as error:
        raise UnknownImageError(f"{path} cannot be read ({error.failure.reason.value}): {error.failure.detail}")
    recorded = recorded_values(session, image_id, options.method) if image_id is not None else {}
    missing = [face for face in faces if face.index not in recorded]
    values = {**(computed_values(session, missing, home) if missing else {}), **recorded}
    sheet_faces = [SheetFace(face.index, face.detection, face.pixels, values.get(face.index, [])) for face in faces]
    return ShownImage(path, sha256, photo, sheet_faces)
