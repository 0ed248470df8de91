"""Suspect labels sent to review: a ranked CSV, or Label Studio tasks with the current label pre-filled."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from annotator.errors import LabelFileError
from annotator.labels.exporting import config_path
from annotator.labels.label_studio import image_url, label_config, prediction_result
from annotator.labels.suspects import Suspect

FORMATS = ("csv", "label-studio")
CSV_COLUMNS = ("rank", "attribute", "sha256", "path", "face_index", "method", "label", "prediction", "score",
               "source")


def _value(attribute: str, value: float) -> str:
    if attribute == "gender":
        return "female" if value >= 0.5 else "male"
    return f"{value:g}"


def write_suspects_csv(suspects: Sequence[Suspect], out: TextIO) -> None:
    """One row per label, most suspicious first: gender labels as male/female, predictions as female probability."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, s in enumerate(suspects, start=1):
        writer.writerow([rank, s.attribute, s.sha256, s.path, s.face_index, s.method, _value(s.attribute, s.label),
                         f"{s.prediction:.4f}", f"{s.score:.6f}", s.source])


def _caption(rank: int, s: Suspect) -> str:
    said = "female probability" if s.attribute == "gender" else "value"
    return (f"suspect {rank}: {s.attribute} labelled {_value(s.attribute, s.label)} by {s.source}; a model that "
            f"never saw this label predicts {said} {s.prediction:.2f}; label quality {s.score:.3f} (0 = surely wrong). "
            f"{Path(s.path).name}, face {s.face_index} ({s.method})")


def suspect_tasks(suspects: Sequence[Suspect], prefixes: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """One Label Studio task per suspect label, in rank order, pre-annotated with the label as it stands."""
    tasks = []
    for rank, s in enumerate(suspects, start=1):
        tasks.append({
            "data": {"image": image_url(s.path, list(prefixes)), "sha256": s.sha256, "face_index": s.face_index,
                     "method": s.method, "path": s.path, "suspect_rank": rank, "attribute": s.attribute,
                     "label_quality": round(s.score, 6), "caption": _caption(rank, s)},
            "predictions": [{
                "model_version": f"label:{s.source}",
                "score": round(s.score, 6),  # Label Studio sorts by it: the most suspicious label first
                "result": [prediction_result(s.attribute, s.label)],
            }],
        })
    return tasks


def write_suspects(suspects: Sequence[Suspect], fmt: str, output: Path | None, stdout: TextIO,
                   prefixes: Sequence[tuple[str, str]] = ()) -> list[Path]:
    """Write the suspects as ``fmt`` to ``output`` (csv also to ``stdout``); returns the files written."""
    if fmt not in FORMATS:
        raise LabelFileError(f"Unknown format {fmt!r}. Valid formats: {', '.join(FORMATS)}.")
    if fmt == "label-studio" and output is None:
        raise LabelFileError("--format label-studio writes a tasks file and its labelling config: give -o FILE.")
    if output is None:
        write_suspects_csv(suspects, stdout)
        return []
    try:
        if fmt == "csv":
            with output.open("w", newline="", encoding="utf-8") as handle:
                write_suspects_csv(suspects, handle)
            return [output]
        output.write_text(json.dumps(suspect_tasks(suspects, prefixes), indent=2) + "\n", encoding="utf-8")
        config_path(output).write_text(label_config(), encoding="utf-8")
    except OSError as error:
        raise LabelFileError(f"Cannot write {error.filename or output}: {error.strerror or error}.") from None
    return [output, config_path(output)]
