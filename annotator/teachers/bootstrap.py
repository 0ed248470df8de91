"""`annotate models bootstrap FOLDER`: distil the teachers into the chain, so the first run gives real values.

The teachers label the folder's faces (reusing values already stored), then each model of the chain is trained on
those values with the seed architectures and recipe (:mod:`annotator.training.recipe`), as `annotate train`
trains on people's labels, save the few :data:`DEPARTURES` measured for teacher values (gender learns the
teacher's probabilities, not hard labels); a person's label of a face wins over the teacher's. The versions are
registered as bootstrapped (their metrics name the teachers), not DEMO. The teachers are not in the chain:
`submit` runs only the distilled models, at the chain's speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from annotator.errors import TrainingDataError
from annotator.faces.extraction import ImageToExtract, extract_faces
from annotator.faces.modes import FaceMode, FaceOptions
from annotator.images.decoding import DecodeError
from annotator.jobs.pipeline import recorded_detections
from annotator.models.crops import crop_batch
from annotator.models.specs import ModelSpec, OutputKind, chain_order
from annotator.settings import Settings
from annotator.teachers.models import TEACHERS
from annotator.teachers.teaching import TaughtImage, TeachResult, teach_folder
from annotator.teachers.values import Target, training_targets
from annotator.training.datasets import MIN_USABLE_ROWS
from db.session import transaction

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from annotator.training.recipe import TrainingResult
    from annotator.training.run import Registration

Echo = Callable[[str], None]
DECODE_REPORT = 500  # faces decoded between two progress lines
SEED_EPOCHS = 40  # the seed recipe's most epochs


@dataclass(frozen=True)
class Departure:
    """Where bootstrap trains a model differently from `annotate train`'s seed recipe (measured on UTKFace, README
    section Cold start); the architectures, optimiser, loss and callbacks stay the seed's."""

    test_split: float | None = None  # None: the spec's
    epochs: int = SEED_EPOCHS  # the most epochs unless --epochs says otherwise
    lr_patience: int | None = None  # None: the spec's
    stop_patience: int | None = None  # None: the spec's

    def applied_to(self, spec: ModelSpec) -> ModelSpec:
        """``spec`` with this departure's patience; the architecture is the spec's own."""
        return replace(spec, lr_patience=self.lr_patience or spec.lr_patience,
                       stop_patience=self.stop_patience or spec.stop_patience)


DEPARTURES = {
    # A test split of gender would only measure agreement with the teacher (the user's own photos are the test);
    # its 15% go to training instead (held out on UTKFace: no loss, any gain within run-to-run noise).
    "gender": Departure(test_split=0.0),
    # On the teacher's continuous values the seed's patience (2 and 5 flat epochs) often stops the mouth model while
    # it is still learning: held out on UTKFace over three seeds, a mean ratio of 6.62x against 6.01x.
    "mouth": Departure(epochs=80, lr_patience=6, stop_patience=12),
    # The 120x120 model costs half of the training time; 16 epochs keep its held-out ratio at 2.47x (bar 1.87x).
    "background_mean": Departure(epochs=16),
}


@dataclass(frozen=True)
class BootstrapOptions:
    """How to train: the most epochs (None: each model's own), the seed recipe's batch and seed, and whether to
    activate the versions."""

    epochs: int | None = None
    batch_size: int = 32
    seed: int = 112
    activate: bool = False


@dataclass(frozen=True)
class TeacherSet:
    """The folder's faces as the chain sees them (n, 120, 120, 3), with what each is to learn."""

    faces: np.ndarray
    targets: list[dict[str, Target]]
    groups: np.ndarray  # the image's sha256 per face: faces of one photo stay in one split


@dataclass(frozen=True)
class BootstrapResult:
    """What was taught, trained and registered."""

    taught: TeachResult
    trained: list[TrainingResult]
    registered: list[Registration]


def load_teacher_set(session: Session, images: list[TaughtImage], options: FaceOptions, *, max_pixels: int,
                     echo: Echo) -> TeacherSet:
    """Decode the faces of ``images`` as a job would (recorded faces, no detection) with their targets."""
    known = ({} if options.mode is FaceMode.ALIGNED
             else recorded_detections(session, [image.image_id for image in images], options.method))
    targets_by_face = training_targets(session, [face_id for image in images for face_id in image.face_ids])
    faces, targets, groups = [], [], []
    for image in images:
        try:
            extracted = extract_faces(ImageToExtract(image.path, image.sha256, known.get(image.image_id, ())),
                                      options, max_pixels=max_pixels)
        except DecodeError as error:  # changed or removed since it was taught: it only costs a training row
            echo(f"  skipped {image.path}: {error.failure.reason.value}")
            continue
        for face in extracted:
            if face.index < len(image.face_ids) and image.face_ids[face.index] in targets_by_face:
                faces.append(face.pixels)
                targets.append(targets_by_face[image.face_ids[face.index]])
                groups.append(image.sha256)
        if len(faces) and len(faces) % DECODE_REPORT == 0:
            echo(f"  decoded {len(faces)} faces")
    if not faces:
        raise TrainingDataError("No face of the folder has teacher values to learn from.")
    return TeacherSet(np.stack(faces), targets, np.asarray(groups))


def model_rows(spec: ModelSpec, data: TeacherSet) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(rows, labels, genders) ``spec`` learns from: gender the teacher's female probability of every face, a
    soft target (distillation; a person's label is 0 male / 1 female); a regressor's value with the gender it is
    given as input (one-hot while training, as `annotate train` does with an export)."""
    if spec.output is OutputKind.GENDER_SOFTMAX:
        rows = [i for i, t in enumerate(data.targets) if "gender" in t]
        labels = np.asarray([data.targets[i]["gender"].value for i in rows], np.float32)
        return np.asarray(rows, int), labels, None
    rows = [i for i, t in enumerate(data.targets) if spec.name in t and "gender" in t]
    labels = np.asarray([data.targets[i][spec.name].value for i in rows], np.float32)
    genders = np.asarray([data.targets[i]["gender"].value >= 0.5 for i in rows], np.int64)
    return np.asarray(rows, int), labels, genders


def _check_rows(spec: ModelSpec, labels: np.ndarray) -> None:
    if len(labels) < MIN_USABLE_ROWS:
        raise TrainingDataError(f"Only {len(labels)} faces have a {spec.name} value to learn from; bootstrap needs "
                                f"at least {MIN_USABLE_ROWS}. Give it a folder with more face photos.")
    if len(np.unique(labels >= 0.5 if spec.output is OutputKind.GENDER_SOFTMAX else labels)) < 2:
        raise TrainingDataError(f"Every face has the same {spec.name} value; {spec.name} cannot learn from that.")


def epochs_for(spec: ModelSpec, options: BootstrapOptions) -> int:
    """The most epochs ``spec`` trains: ``--epochs`` when given, else the seed recipe's or its departure's."""
    return DEPARTURES.get(spec.name, Departure()).epochs if options.epochs is None else options.epochs


def train_chain(data: TeacherSet, options: BootstrapOptions, echo: Echo) -> list[TrainingResult]:
    """Train every model of the chain on the teacher set with the seed recipe; echo progress and seed reports."""
    from annotator.training.recipe import train_on_inputs

    results = []
    for spec in chain_order():
        rows, labels, genders = model_rows(spec, data)
        _check_rows(spec, labels)
        from_labels = sum(data.targets[i][spec.name].is_label for i in rows)
        echo(f"{spec.name}: training on {len(rows)} faces ({TEACHERS[spec.name]} values"
             + (f", {from_labels} people's labels winning)" if from_labels else ")"))

        departure = DEPARTURES.get(spec.name, Departure())
        epochs = epochs_for(spec, options)

        def progress(epoch: int, logs: dict[str, float], name: str = spec.name, most: int = epochs) -> None:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "learning_rate")
            echo(f"  {name} epoch {epoch}/{most}  {shown}")

        result = train_on_inputs(departure.applied_to(spec), crop_batch(data.faces[rows], spec), labels, gender=genders,
                                 groups=data.groups[rows], epochs=epochs, batch_size=options.batch_size,
                                 seed=options.seed, test_split=departure.test_split, on_epoch=progress)
        echo(f"{spec.name} seed report, on teacher values ({result.epochs_run} epochs):\n{result.report.format()}")
        results.append(result)
    return results


def bootstrap_metrics(result: TrainingResult, data: TeacherSet, folder: Path, faces: FaceOptions,
                      options: BootstrapOptions) -> dict[str, Any]:
    """The seed report plus what the version was distilled from, stored with it."""
    rows, _, _ = model_rows(result.spec, data)
    sources = sorted({data.targets[i][result.spec.name].source for i in rows})
    return {
        **result.report.to_dict(),
        "bootstrapped": {"teacher": f"teacher:{TEACHERS[result.spec.name]}", "sources": sources,
                         "folder": str(folder), "face_method": faces.method, "rows_used": len(rows)},
        "recipe": {"optimizer": "adam", "learning_rate": 1e-3, "epochs": epochs_for(result.spec, options),
                   "epochs_run": result.epochs_run, "batch_size": options.batch_size, "seed": options.seed,
                   "groups": "image sha256",
                   "departure": asdict(DEPARTURES.get(result.spec.name, Departure()))},
        "history": {key: [round(value, 6) for value in values] for key, values in result.history.items()},
    }


def bootstrap_chain(factory: sessionmaker[Session], settings: Settings, source: Path, faces: FaceOptions,
                    options: BootstrapOptions, echo: Echo) -> BootstrapResult:
    """Teach the folder where needed, train the four chain models on the teacher values, register them."""
    from annotator.tf_runtime import import_tensorflow
    from annotator.training.run import register_trained

    import_tensorflow()

    def progress(done: int, total: int) -> None:
        echo(f"  teachers: {done}/{total} images")

    echo(f"Teaching {source} ({faces.method} faces)")
    taught = teach_folder(factory, source, faces, max_pixels=settings.max_image_pixels, progress=progress)
    echo(f"  {len(taught.images)} images with {taught.faces} faces have teacher values ({taught.taught} taught now, "
         f"{taught.reused} already taught); {len(taught.failed)} files failed")
    with factory() as session:
        data = load_teacher_set(session, taught.images, faces, max_pixels=settings.max_image_pixels, echo=echo)
    results = train_chain(data, options, echo)
    folder = source.expanduser().resolve()
    registered = []
    with transaction(factory) as session:
        for result in results:
            registered.append(register_trained(session, settings.home, result,
                                               bootstrap_metrics(result, data, folder, faces, options),
                                               activate=options.activate, force=False))
    return BootstrapResult(taught, results, registered)
