"""`annotate report`: gather a run's facts, pick the faces to show, and write one self-contained HTML page."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from annotator.faces.quality import FLAGS, backfill_quality
from annotator.inspection.report import near_duplicates, sections
from annotator.inspection.report.figures import doubt, extremes, most_doubtful
from annotator.inspection.report.gather import (
    FaceTable,
    LabelColumns,
    face_table,
    report_scope,
    run_facts,
    winning_labels,
)
from annotator.inspection.report.html import Tile, page
from annotator.inspection.report.thumbnails import thumbnails
from annotator.settings import Settings
from db.session import transaction

FACES_PER_END = 8
UNCERTAIN_SHOWN = 16
FLAG_EXAMPLES = 8


@dataclass(frozen=True)
class BuiltReport:
    """What was written."""

    path: Path
    size: int  # bytes
    faces: int  # faces with current predictions in the report
    thumbnails: int
    measured: int  # faces whose quality was measured for this report (recorded before the measures existed)
    seconds: float


def _flag_examples(table: FaceTable) -> dict[str, np.ndarray]:
    """The most extreme faces of each flag: darkest, brightest, blurriest, lowest score first."""
    keys = {"dark": table.brightness, "bright": -table.brightness, "blurry": table.sharpness, "low_score": table.score}
    found = {}
    for flag in FLAGS:
        flagged = np.flatnonzero(table.flags[flag])
        found[flag] = flagged[np.argsort(keys[flag][flagged], kind="stable")][:FLAG_EXAMPLES]
    return found


def _value_lines(table: FaceTable, labels: LabelColumns, position: int) -> list[str]:
    lines = []
    for name, values in table.values.items():
        value = values[position]
        if np.isnan(value):
            continue
        text = (f"{'female' if value >= 0.5 else 'male'} {max(value, 1 - value):.2f}" if name == "gender"
                else f"{name} {value:.2f}")
        if name in labels.positions:
            hit = np.flatnonzero(labels.positions[name] == position)
            if len(hit):
                label = labels.values[name][hit[0]]
                text += f" (label {('female' if label >= 0.5 else 'male') if name == 'gender' else f'{label:g}'})"
        lines.append(text)
    return lines


def _tiles(session: Session, table: FaceTable, labels: LabelColumns, chosen: Sequence[np.ndarray],
           max_pixels: int) -> tuple[Callable[..., list[Tile]], int]:
    """A function making the tiles of table positions, with every thumbnail they need decoded once."""
    wanted = np.unique(np.concatenate([np.asarray(c, np.int64) for c in chosen])) if chosen else np.zeros(0, np.int64)
    pictures = thumbnails(session, table.face_id[wanted].tolist(), max_pixels=max_pixels)

    def tiles(positions: Sequence[int], extra: Sequence[str] | None = None) -> list[Tile]:
        return [Tile(pictures[int(table.face_id[p])], _value_lines(table, labels, int(p))
                     + ([extra[i]] if extra else [])) for i, p in enumerate(positions)]

    return tiles, len(pictures)


def build_report(factory: sessionmaker[Session], settings: Settings, output: Path, *, job_id: int | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> BuiltReport:
    """Write the report of one job (or of the whole database) to ``output``; faces recorded before quality
    measures existed are measured first (``on_progress(done, total)`` follows that)."""
    started = time.perf_counter()
    with factory() as session:
        scope = report_scope(session, job_id)
    measured = backfill_quality(factory, max_pixels=settings.max_image_pixels, where=scope.faces,
                                on_progress=on_progress)
    with transaction(factory) as session:  # images recorded before perceptual hashes existed get theirs stored
        facts = run_facts(session, scope)
        table = face_table(session, scope)
        labels = winning_labels(session, table)
        ends = {name: extremes(table.values[name], FACES_PER_END) for name in scope.attributes}
        largest, mean = doubt(table.values, {n: (labels.positions[n], labels.values[n]) for n in labels.positions})
        uncertain = most_doubtful(largest, mean, UNCERTAIN_SHOWN)
        flagged = _flag_examples(table)
        groups = near_duplicates.find(session, scope, table, max_pixels=settings.max_image_pixels)
        chosen = [*(end for pair in ends.values() for end in pair), uncertain, *flagged.values(),
                  *near_duplicates.positions(groups)]
        tiles, pictures = _tiles(session, table, labels, chosen, settings.max_image_pixels)
        parts = [
            sections.run_section(facts, table),
            sections.attributes_section(scope, table),
            sections.extremes_section(scope, ends, tiles),
            sections.uncertain_section(uncertain, largest, tiles),
            sections.agreement_section(scope, table, labels),
            sections.quality_section(table, flagged, tiles, near_duplicates.markup(groups, tiles)),
        ]
    what = f"job {job_id}" if job_id is not None else "all jobs"
    subtitle = (f"{what} · {len(table):,} faces · chain {' '.join(v.label for v in scope.versions)} · made "
                f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by annotate {package_version('annotate')}")
    output.write_text(page(f"annotate report: {what}", subtitle, parts), encoding="utf-8")
    return BuiltReport(output, output.stat().st_size, len(table), pictures, measured, time.perf_counter() - started)
