"""Label Studio tasks of the annotated faces, the current predictions as pre-annotations, most uncertain first."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from annotator.errors import LabelFileError
from annotator.exports.query import FaceRow, predicted_rows, winning_labels
from annotator.images.sources import is_uri, name_of, upload
from annotator.labels.label_studio import image_url, label_config, prediction_result
from annotator.labels.uncertainty import disagreement, face_uncertainty
from annotator.models.specs import chain_order
from annotator.teachers.values import teacher_values

ORDERS = ("uncertainty", "disagreement")
"""uncertainty: the chain's own doubt first; disagreement: the faces where the chain and the teachers differ most."""


@dataclass(frozen=True)
class ExportedTasks:
    """Where the tasks and the labelling config were written, and how many tasks."""

    tasks: Path | str  # a str is a URI
    config: Path | str
    count: int


def _predictions(row: FaceRow) -> dict[str, float]:
    """The row's values by attribute, gender as the female probability."""
    values = {name: value for name, value in row.values.items() if name not in ("male_prob", "female_prob")}
    if "female_prob" in row.values:
        values["gender"] = row.values["female_prob"]
    return values


def _caption(row: FaceRow, predictions: dict[str, float], doubt: float) -> str:
    values = ", ".join(f"{name} {predictions[name]:.2f}" for name in (s.name for s in chain_order())
                       if name in predictions)
    face = f"face {row.face_index} ({row.method})"
    return f"{name_of(row.path)}, {face}: predicted {values} (gender as female probability); uncertainty {doubt:.2f}"


def _task(row: FaceRow, labels: dict[str, float], prefixes: list[tuple[str, str]],
          teachers: dict[str, float] | None = None) -> tuple[tuple[float, float], dict[str, Any]]:
    """The task of one face and its sort key: (uncertainty, mean), or with ``teachers`` (disagreement,
    uncertainty)."""
    predictions = _predictions(row)
    score = face_uncertainty(predictions, labels)
    order = [spec.name for spec in chain_order() if spec.name in predictions]
    task = {
        "data": {"image": image_url(row.path, prefixes), "sha256": row.sha256, "face_index": row.face_index,
                 "method": row.method, "path": row.path, "uncertainty": round(score[0], 4),
                 "caption": _caption(row, predictions, score[0])},
        "predictions": [{
            "model_version": " ".join(row.sources[name] for name in order),
            "score": round(1.0 - score[0], 4),  # Label Studio sorts by confidence: low means look first
            "result": [prediction_result(name, predictions[name]) for name in order],
        }],
    }
    if teachers is None:
        return score, task
    gap = disagreement(predictions, teachers)
    task["data"]["disagreement"] = round(gap, 4)
    task["data"]["teachers"] = {name: round(value, 4) for name, value in teachers.items()}
    return (gap, score[0]), task


def label_studio_tasks(session: Session, *, job_id: int | None = None, limit: int | None = None,
                       prefixes: list[tuple[str, str]] | None = None, order: str = "uncertainty"
                       ) -> list[dict[str, Any]]:
    """One task per face with current predictions (of one job's chain, or the active one), most uncertain first,
    or with ``order="disagreement"`` those where the chain and the teachers (`annotate teach`) differ most first."""
    if order not in ORDERS:
        raise ValueError(f"Unknown order {order!r}. Valid orders: {', '.join(ORDERS)}.")
    rows = predicted_rows(session, job_id)
    labels: dict[int, dict[str, float]] = {}
    for (face_id, attribute), (value, _) in winning_labels(session).items():
        labels.setdefault(face_id, {})[attribute] = value
    taught = {face_id: {name: target.value for name, target in values.items()}
              for face_id, values in teacher_values(session, rows).items()} if order == "disagreement" else None
    scored = [(*_task(row, labels.get(face_id, {}), prefixes or [],
                      None if taught is None else taught.get(face_id, {})), row) for face_id, row in rows.items()]
    scored.sort(key=lambda item: (-item[0][0], -item[0][1], item[2].path, item[2].face_index))
    return [task for _, task, _ in scored[:limit]]


def config_path(tasks_path: Path | str) -> Path | str:
    """Where the labelling config goes: next to the tasks, ``tasks.json`` -> ``tasks.label_config.xml``."""
    if isinstance(tasks_path, str) and is_uri(tasks_path):
        stem = tasks_path.rsplit(".", 1)[0] if "." in name_of(tasks_path) else tasks_path
        return stem + ".label_config.xml"
    return Path(tasks_path).with_suffix(".label_config.xml")


def write_label_studio(session: Session, output: Path | str, *, job_id: int | None = None, limit: int | None = None,
                       prefixes: list[tuple[str, str]] | None = None, order: str = "uncertainty") -> ExportedTasks:
    """Write the tasks to ``output`` (a file, or a URI such as ``s3://bucket/tasks.json``) and the labelling
    config next to them."""
    tasks = label_studio_tasks(session, job_id=job_id, limit=limit, prefixes=prefixes, order=order)
    config = config_path(output)
    texts = {output: json.dumps(tasks, indent=2) + "\n", config: label_config()}
    try:
        for where, text in texts.items():
            if isinstance(where, str) and is_uri(where):
                with tempfile.TemporaryDirectory(prefix="annotate-tasks-") as scratch:
                    local = Path(scratch) / name_of(where)
                    local.write_text(text, encoding="utf-8")
                    upload(local, where)
            else:
                Path(where).write_text(text, encoding="utf-8")
    except OSError as error:
        raise LabelFileError(f"Cannot write {getattr(error, 'filename', None) or output}: "
                             f"{getattr(error, 'strerror', None) or error}.") from None
    return ExportedTasks(output, config, len(tasks))
