"""Which labels are probably wrong: out-of-fold predictions of the chain model, scored by cleanlab.

For each labelled attribute, its model of the chain is trained k times with the seed recipe on the labelled
faces (:mod:`annotator.training.folds`), so that every face gets a prediction from a model that never saw its
label. cleanlab turns label and prediction into a label-quality score in 0..1, low meaning probably wrong:
``cleanlab.rank.get_label_quality_scores`` (self-confidence: the out-of-fold probability of the given class)
for gender, ``cleanlab.regression.rank.get_label_quality_scores`` (its default "outre" method) for the
regressors. Faces are ranked by that score, lowest first. Folds keep the faces of one image and of
near-duplicate images together, so a copy cannot vouch for its original's label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.errors import AnnotateError, MissingExtraError, NoActiveModelError
from annotator.exports.query import FaceRow, predicted_rows, winning_labels
from annotator.models.specs import REGISTRY, ModelSpec, OutputKind, chain_order
from db.models import Face, Image
from db.queries import QUERY_BATCH, batched

Echo = Callable[[str], None]
MIN_LABELS_PER_FOLD = 5
DECODE_CHUNK = 256  # faces decoded before being cropped, so memory holds crops, not 120x120 faces


class SuspectsError(AnnotateError):
    """Labels that cannot be checked: none, too few for k folds, one class only, or an unknown attribute."""


@dataclass(frozen=True)
class Suspect:
    """One label, the prediction of a model that did not see it, and cleanlab's quality score of the label."""

    attribute: str
    sha256: str
    path: str
    face_index: int
    method: str
    label: float  # gender: 0 male, 1 female
    prediction: float  # gender: the out-of-fold female probability
    score: float  # cleanlab's label quality in 0..1: low means probably wrong
    source: str  # the label's source, as imported


@dataclass(frozen=True)
class _Labelled:
    face_ids: list[int]
    rows: list[FaceRow]
    labels: np.ndarray
    sources: list[str]


def _require_cleanlab() -> None:
    try:
        import cleanlab  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise MissingExtraError("`annotate labels suspects` scores labels with cleanlab: "
                                "pip install 'annotate[quality]'.") from None


def _labelled(session: Session, attribute: str, winners: dict[tuple[int, str], tuple[float, str]]) -> _Labelled:
    wanted = {face_id: won for (face_id, name), won in winners.items() if name == attribute}
    found: list[tuple[int, FaceRow]] = []
    for chunk in batched(sorted(wanted), QUERY_BATCH):
        query = (select(Face.id, Face.index, Face.method, Face.box, Face.landmarks, Image.sha256, Image.path)
                 .join(Image, Image.id == Face.image_id).where(Face.id.in_(chunk)))
        for face_id, index, method, box, landmarks, sha256, path in session.execute(query):
            found.append((face_id, FaceRow(path, sha256, index, method, box, landmarks)))
    found.sort(key=lambda item: (item[1].sha256, item[1].method, item[1].face_index))  # an image's faces adjacent
    ids = [face_id for face_id, _ in found]
    return _Labelled(ids, [row for _, row in found], np.asarray([wanted[i][0] for i in ids], np.float32),
                     [wanted[i][1] for i in ids])


def _attributes(asked: Sequence[str], winners: dict[tuple[int, str], tuple[float, str]]) -> list[str]:
    chain = [spec.name for spec in chain_order()]
    labelled = {name for _, name in winners}
    for name in asked:
        if name not in chain:
            raise SuspectsError(f"Unknown attribute {name!r}. Labels of these can be checked: {', '.join(chain)}.")
        if name not in labelled:
            raise SuspectsError(f"No face has a {name} label. Import labels with `annotate labels import FILE`.")
    names = [name for name in chain if name in (asked or labelled)]
    if not names:
        raise SuspectsError("No labels to check. Import labels with `annotate labels import FILE` first.")
    return names


def _check_counts(spec: ModelSpec, labels: np.ndarray, folds: int) -> None:
    if len(labels) < folds * MIN_LABELS_PER_FOLD:
        raise SuspectsError(f"{len(labels)} faces have a {spec.name} label; {folds} folds need at least "
                            f"{folds * MIN_LABELS_PER_FOLD} (fewer folds with --folds, or label more faces).")
    is_gender = spec.output is OutputKind.GENDER_SOFTMAX
    classes = np.unique(labels >= 0.5) if is_gender else np.unique(np.rint(labels * 2))
    if len(classes) < 2:
        raise SuspectsError(f"Every {spec.name} label has the same value: nothing can be wrong relative to another.")


def _faces(labelled: _Labelled, spec: ModelSpec, echo: Echo) -> tuple[np.ndarray, np.ndarray]:
    """The model inputs of the faces that can be read, and their positions in ``labelled``."""
    from annotator.errors import ExportError
    from annotator.exports.aligned_faces import aligned_faces
    from annotator.models.crops import crop_batch

    inputs, kept, pending = [], [], []
    skipped: list[str] = []
    start = 0
    while start < len(labelled.rows):
        end = start + 1
        while end < len(labelled.rows) and labelled.rows[end].sha256 == labelled.rows[start].sha256:
            end += 1
        try:
            pending += list(aligned_faces(labelled.rows[start:end]))
            kept += range(start, end)
        except ExportError as error:  # a file gone since it was labelled: leave its faces out, say so
            skipped.append(str(error))
        if len(pending) >= DECODE_CHUNK or (end == len(labelled.rows) and pending):
            inputs.append(crop_batch(np.stack(pending), spec))
            pending = []
        start = end
    if skipped:
        echo(f"  left out {len(skipped)} images that cannot be read: {skipped[0]}"
             + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""))
    images = np.concatenate(inputs) if inputs else np.zeros((0, *spec.input_shape), np.float32)
    return images, np.asarray(kept, int)


def _gender_inputs(session: Session, face_ids: list[int], winners: dict[tuple[int, str], tuple[float, str]]
                   ) -> np.ndarray | None:
    """Each face's gender (0/1) from its gender label, else its current prediction; None if any has neither."""
    known = {face_id: value for (face_id, name), (value, _) in winners.items() if name == "gender"}
    if any(face_id not in known for face_id in face_ids):
        try:
            predicted = predicted_rows(session)
        except NoActiveModelError:
            return None
        for face_id in face_ids:
            row = predicted.get(face_id)
            if face_id not in known and row is not None and "female_prob" in row.values:
                known[face_id] = row.values["female_prob"]
    if any(face_id not in known for face_id in face_ids):
        return None
    return (np.asarray([known[face_id] for face_id in face_ids]) >= 0.5).astype(int)


def _scores(spec: ModelSpec, labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    if spec.output is OutputKind.GENDER_SOFTMAX:
        from cleanlab.rank import get_label_quality_scores

        return np.asarray(get_label_quality_scores((labels >= 0.5).astype(int), outputs))
    from cleanlab.regression.rank import get_label_quality_scores as regression_scores

    return np.asarray(regression_scores(labels, outputs))


def find_suspects(session: Session, attributes: Sequence[str] = (), *, folds: int = 3, epochs: int = 40,
                  seed: int = 112, echo: Echo = print) -> list[Suspect]:
    """Every label of ``attributes`` (default: every labelled one), most probably wrong first.

    Trains each attribute's model ``folds`` times (the seed recipe, at most ``epochs`` epochs with early
    stopping) and scores each label against the prediction of the model that did not see it. Images with no
    perceptual hash yet are hashed through ``session`` (the caller commits).
    """
    _require_cleanlab()
    from annotator.exports.grouping import split_groups
    from annotator.tf_runtime import import_tensorflow
    from annotator.training.folds import out_of_fold_outputs

    winners = winning_labels(session)
    found: list[Suspect] = []
    for name in _attributes(attributes, winners):
        spec = REGISTRY[name]
        labelled = _labelled(session, name, winners)
        _check_counts(spec, labelled.labels, folds)
        echo(f"{name}: {len(labelled.rows)} labelled faces; reading them...")
        import_tensorflow()
        images, kept = _faces(labelled, spec, echo)
        rows = [labelled.rows[i] for i in kept]
        labels = labelled.labels[kept]
        _check_counts(spec, labels, folds)
        targets = (labels >= 0.5).astype(int) if spec.output is OutputKind.GENDER_SOFTMAX else labels
        gender = _gender_inputs(session, [labelled.face_ids[i] for i in kept], winners) if spec.takes_gender else None
        groups = split_groups(session, rows)
        keys = np.asarray([groups.key_of[row.sha256] for row in rows])
        echo(f"  training {folds} models of {name}, each on {folds - 1}/{folds} of them (seed recipe, at most "
             f"{epochs} epochs); {groups.near_duplicate_groups} groups of near-duplicates kept in one fold")

        def progress(fold: int, total: int, epochs_run: int, held: int, name: str = name) -> None:
            echo(f"  fold {fold}/{total}: {epochs_run} epochs, predicted the {held} faces it did not see")

        outputs = out_of_fold_outputs(spec, images, targets, gender=gender, groups=keys, folds=folds, epochs=epochs,
                                      seed=seed, on_fold=progress)
        scores = _scores(spec, labels, outputs)
        predictions = outputs[:, 1] if spec.output is OutputKind.GENDER_SOFTMAX else outputs
        found += [Suspect(name, row.sha256, row.path, row.face_index, row.method, float(label), float(prediction),
                          float(score), labelled.sources[i])
                  for row, label, prediction, score, i in zip(rows, labels, predictions, scores, kept)]
    found.sort(key=lambda s: (s.score, s.attribute, s.path, s.face_index, s.method))
    return found
