"""Compare two stored versions of a model on a labelled set of aligned faces, judged as the seeds judge."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from annotator.errors import LabelledSetError, NoActiveModelError
from annotator.images.decoding import DecodeError, decode_face
from annotator.models.chain import load_chain, predict_attribute
from annotator.models.seed_report import (
    COLLAPSE_SAMPLES,
    GenderReport,
    RegressorReport,
    gender_report,
    regressor_report,
)
from annotator.models.specs import ModelSpec, OutputKind, get_spec
from annotator.models.store import active_version, get_version

GENDER_LABELS = {"male": 0, "female": 1}
NEUTRAL_GENDER = (0.5, 0.5)
SHOWN_SKIPS = 3


@dataclass(frozen=True)
class LabelledSet:
    """Decoded faces (n, 120, 120, 3) with their labels, and the rows whose image could not be decoded."""

    faces: np.ndarray
    labels: np.ndarray
    skipped: list[tuple[str, str]]  # (path as written in the CSV, reason)


def _parse_label(spec: ModelSpec, text: str, where: str) -> float:
    if spec.output is OutputKind.GENDER_SOFTMAX:
        if text.lower() not in GENDER_LABELS:
            raise LabelledSetError(f"{where}: gender labels are male or female. Received: label={text!r}.")
        return float(GENDER_LABELS[text.lower()])
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise LabelledSetError(f"{where}: {spec.name} labels are numbers in 0..1. Received: label={text!r}.")
    return value


def read_labelled_set(csv_path: Path, spec: ModelSpec) -> LabelledSet:
    """Read a ``path,label`` CSV (an optional ``path,label`` header; paths relative to it) and decode its faces."""
    try:
        with csv_path.open(newline="", encoding="utf-8") as handle:
            rows = [(number, row) for number, row in enumerate(csv.reader(handle), 1) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError) as error:
        raise LabelledSetError(f"Cannot read the labelled CSV {csv_path}: {error}.") from None
    if rows and [c.strip().lower() for c in rows[0][1]] == ["path", "label"]:
        rows = rows[1:]
    faces, labels, skipped = [], [], []
    for number, row in rows:
        where = f"{csv_path}, line {number}"
        if len(row) != 2:
            raise LabelledSetError(f"{where}: expected 2 columns path,label. Received: {len(row)} columns.")
        name, text = row[0].strip(), row[1].strip()
        label = _parse_label(spec, text, where)
        try:
            faces.append(decode_face(csv_path.parent / name))
        except DecodeError as error:  # one bad image should not stop the comparison; it is reported instead
            skipped.append((name, f"{error.failure.reason.value}: {error.failure.detail}"))
            continue
        labels.append(label)
    if not faces:
        raise LabelledSetError(f"{csv_path} lists no image that could be decoded ({len(skipped)} failed).")
    return LabelledSet(np.stack(faces), np.asarray(labels, np.float64), skipped)


@dataclass(frozen=True)
class VersionResult:
    """One version's seed report on the labelled set."""

    label: str
    is_demo: bool
    report: GenderReport | RegressorReport


@dataclass(frozen=True)
class Comparison:
    """Both versions' reports, where the regressors' gender input came from, and the verdict."""

    spec: ModelSpec
    results: tuple[VersionResult, VersionResult]
    n_images: int
    gender_source: str | None
    skipped: list[tuple[str, str]]

    def better(self) -> VersionResult | None:
        """The better version (None for a tie): higher accuracy, or lower val MSE; a collapsed model never wins."""
        first, second = self.results
        if _rank(first.report) == _rank(second.report):
            return None
        return first if _rank(first.report) > _rank(second.report) else second

    def format(self) -> str:
        """The report a user reads: data, each version, the verdict."""
        lines = [f"{self.spec.name}: {self.n_images} labelled images"]
        if self.skipped:
            shown = "; ".join(f"{path} ({reason})" for path, reason in self.skipped[:SHOWN_SKIPS])
            lines.append(f"  skipped {len(self.skipped)} images that could not be decoded: {shown}")
        if self.gender_source:
            lines.append(f"  gender input: {self.gender_source}")
        for result in self.results:
            lines += [f"{result.label}{'  DEMO (generated portraits)' if result.is_demo else ''}",
                      result.report.format()]
        winner = self.better()
        lines.append(f"Better: {winner.label} ({_score(winner.report)} vs {_score(self._other(winner).report)})"
                     if winner else f"No difference: both {_score(self.results[0].report)}")
        return "\n".join(lines)

    def _other(self, result: VersionResult) -> VersionResult:
        return self.results[1] if result is self.results[0] else self.results[0]


def _rank(report: GenderReport | RegressorReport) -> tuple[float, ...]:
    if isinstance(report, GenderReport):
        return (report.val_accuracy,)
    # The seeds' rule: a collapsed model did not learn, whatever its loss says, so it ranks below any other.
    return (0.0 if report.collapsed else 1.0, -report.val_mse)


def _score(report: GenderReport | RegressorReport) -> str:
    if isinstance(report, GenderReport):
        return f"accuracy {report.val_accuracy:.4f}"
    return f"val MSE {report.val_mse:.4f}{', collapsed' if report.collapsed else ''}"


def _gender_input(session: Session, faces: np.ndarray, neutral: bool, home: Path
                  ) -> tuple[np.ndarray, np.ndarray, str]:
    """Gender probabilities for the regressors, the baseline groups, and where they came from."""
    if neutral:
        # No gender is known, so the per-gender baseline has a single group.
        return np.tile(np.float32([NEUTRAL_GENDER]), (len(faces), 1)), np.zeros(len(faces), int), \
            "neutral 0.5/0.5 (--neutral-gender)"
    record = active_version(session, "gender")
    if record is None:
        raise NoActiveModelError("No active gender model gives the regressors their gender input; activate one "
                                 "with `annotate models activate gender VERSION` or pass --neutral-gender.")
    (model,) = load_chain([record], home)
    probs = predict_attribute(model, faces, None)
    return probs, probs.argmax(axis=1), f"{record.label}, whose predicted gender also groups the baseline"


def compare_versions(session: Session, name: str, versions: tuple[int, int], labels_csv: Path, *, home: Path,
                     neutral_gender: bool = False) -> Comparison:
    """Run both versions of ``name`` (stored under ``home``) on the labelled set and report each as the seeds do."""
    spec = get_spec(name)
    records = [get_version(session, name, v) for v in versions]
    if spec.output is OutputKind.GENDER_SOFTMAX and neutral_gender:
        raise ValueError("--neutral-gender gives regressors their gender input; the gender model needs none.")
    data = read_labelled_set(labels_csv, spec)
    gender, groups, source = None, np.zeros(len(data.labels), int), None
    if spec.takes_gender:
        gender, groups, source = _gender_input(session, data.faces, neutral_gender, home)
    results = []
    for record in records:
        (model,) = load_chain([record], home)
        outputs = predict_attribute(model, data.faces, gender)
        if spec.output is OutputKind.GENDER_SOFTMAX:
            report: GenderReport | RegressorReport = gender_report(
                val_gender=data.labels.astype(int), val_probs=outputs, first_probs=outputs, n_train=0)
        else:
            report = regressor_report(train_targets=data.labels, train_gender=groups, val_targets=data.labels,
                                      val_gender=groups, val_outputs=outputs,
                                      first_outputs=outputs[:COLLAPSE_SAMPLES])
        results.append(VersionResult(record.label, record.is_demo, report))
    return Comparison(spec, (results[0], results[1]), len(data.labels), source, data.skipped)
