"""The report's sections, each from gathered facts: numbers into tables, arrays into charts, faces into strips."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import numpy as np

from annotator.faces.quality import BLURRY_BELOW, BRIGHT_ABOVE, DARK_BELOW, FLAGS, LOW_SCORE_BELOW
from annotator.inspection.report import charts
from annotator.inspection.report.figures import (
    distribution,
    gender_agreement,
    regressor_agreement,
    sample,
)
from annotator.inspection.report.gather import FaceTable, LabelColumns, RunFacts, Scope
from annotator.inspection.report.html import Section, Tile, cards, chart, escape, number, strip, table
from db.models import ImageStatus

SCATTER_POINTS = 2000
"""Points drawn per scatter plot at most; the statistics use every face."""

Tiles = Callable[[Sequence[int], Sequence[str] | None], list[Tile]]
FLAG_TEXT = {
    "dark": f"very dark (brightness below {DARK_BELOW})",
    "bright": f"very bright (brightness above {BRIGHT_ABOVE})",
    "blurry": f"blurry (sharpness below {BLURRY_BELOW:g})",
    "low_score": f"low detector score (below {LOW_SCORE_BELOW})",
}


def _seconds(value: float) -> str:
    if value < 90:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min" if value < 5400 else f"{value / 3600:.1f} h"


def _when(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def run_section(facts: RunFacts, table_: FaceTable) -> Section:
    """Counts, timings, failures by reason with examples, model versions and stale predictions."""
    count = facts.outcomes.get
    elapsed = sum(job.elapsed_seconds for job in facts.jobs)
    processed = sum(job.done + job.failed for job in facts.jobs)
    section = Section("run", "The run")
    section.body.append(cards([
        (f"{facts.images:,}", "distinct images", False), (f"{facts.faces:,}", "faces", False),
        (f"{count(ImageStatus.DONE.value, 0):,}", "done", False),
        (f"{count(ImageStatus.SKIPPED.value, 0):,}", "skipped", False),
        (f"{count(ImageStatus.FAILED.value, 0):,}", "failed", count(ImageStatus.FAILED.value, 0) > 0),
        (f"{count(ImageStatus.PENDING.value, 0):,}", "pending", False),
        (f"{facts.stale.outdated:,}", "faces with stale predictions", facts.stale.outdated > 0),
        (_seconds(elapsed), "time (jobs listed)", False),
        (f"{processed / elapsed:.1f}" if elapsed else "–", "images / s", False),
    ]))
    rows = [(f"{job.id}", escape(job.status), escape(job.face_mode), escape(job.source), f"{job.total:,}",
             f"{job.done:,}", f"{job.skipped:,}", f"{job.failed:,}", f"{job.pending:,}", f"{job.faces:,}",
             _when(job.created_at), _seconds(job.elapsed_seconds),
             f"{(job.done + job.failed) / job.elapsed_seconds:.1f}" if job.elapsed_seconds else "–")
            for job in facts.jobs]
    section.body.append("<h3>Jobs</h3>" + table(
        ["job", "status", "faces", "folder", "total", "done", "skipped", "failed", "pending", "faces found",
         "submitted", "time", "images/s"], rows, numeric=(0, 4, 5, 6, 7, 8, 9, 12)))
    if facts.more_jobs:
        section.body.append(f'<p class="muted">and {facts.more_jobs:,} older jobs (counted above, not listed)</p>')
    section.body.append("<h3>Skipped and failed, by reason code</h3>")
    if facts.reasons:
        section.body.append(chart(charts.reasons_chart([f"{g.status}: {g.reason}" for g in facts.reasons],
                                                       [g.count for g in facts.reasons]), "images by reason"))
        section.body.append(table(["status", "reason", "images", "examples"], [
            (escape(g.status), f"<code>{escape(g.reason)}</code>", f"{g.count:,}",
             "<br>".join(f"{escape(path)}: <span class=muted>{escape(detail)}</span>" for path, detail in g.examples))
            for g in facts.reasons], numeric=(2,)))
    else:
        section.body.append('<p class="ok">No image was skipped or failed.</p>')
    section.body.append("<h3>Model versions</h3>" + table(
        ["version", "in this chain", "active", "demo", "predictions on these faces", "registered"],
        [(escape(v.label), "yes" if v.in_chain else "", "yes" if v.active else "",
          '<span class="flag">DEMO</span>' if v.is_demo else "", f"{v.predictions:,}", _when(v.created_at))
         for v in facts.versions], numeric=(4,)))
    stale = facts.stale
    if stale.outdated:
        detail = ", ".join(f"{name} {n:,}" for name, n in stale.stale.items() if n) or "none"
        missing = ", ".join(f"{name} {n:,}" for name, n in stale.missing.items() if n) or "none"
        section.body.append(f"<p><b>{stale.outdated:,} of {stale.faces:,} faces</b> have stale predictions (older "
                            f"versions: {escape(detail)}; missing: {escape(missing)}); `annotate reannotate` "
                            "updates them. Only current predictions are shown below.</p>")
    else:
        section.body.append(f'<p class="ok">All {stale.faces:,} faces have predictions by the versions of this '
                            "chain.</p>")
    section.body.append(f'<p class="muted">{len(table_):,} faces with current predictions are shown below.</p>')
    return section


def attributes_section(scope: Scope, table_: FaceTable) -> Section:
    """Per attribute: the distribution split by predicted gender, its summary and the seed's collapse check."""
    section = Section("attributes", "Values per attribute")
    female = table_.values.get("gender", np.full(len(table_), np.nan))
    section.body.append('<p class="muted">Split by the predicted gender (female probability at least 0.5). '
                        "Collapse check as the seed reports it: the first 15 faces' values spread less than 0.05; "
                        "“narrow” applies the same test to the 5th-95th percentiles of the whole run.</p>")
    for name in scope.attributes:
        values = table_.values[name]
        summary = distribution(values, female)
        if summary.collapsed or summary.narrow:
            verdict = ('<span class="flag">COLLAPSED</span> values all look alike'
                       if summary.collapsed else '<span class="flag">NARROW</span> the run spans less than 0.05')
        else:
            verdict = '<span class="ok">no collapse</span>'
        stats = table(["", name], [
            ("faces", f"{summary.count:,}"), ("mean ± sd", f"{number(summary.mean)} ± {number(summary.std)}"),
            ("5 / 25 / 50 / 75 / 95 %", " / ".join(number(v, 2) for v in summary.percentiles.values())),
            ("mean, predicted male", number(summary.mean_male)), ("mean, predicted female", number(summary.mean_female)),
            ("first 15 faces", " ".join(number(v, 2) for v in summary.first_outputs)),
            ("collapse check", verdict),
        ])
        picture = chart(charts.distribution_chart(name, values, female), f"distribution of {name}") \
            if summary.count else '<p class="muted">no values</p>'
        section.body.append(f'<h3>{escape(name)}</h3><div class="attribute">{picture}{stats}</div>')
    return section


def extremes_section(scope: Scope, ends: dict[str, tuple[np.ndarray, np.ndarray]], tiles: Tiles) -> Section:
    """Faces at both ends of every attribute."""
    section = Section("extremes", "Faces at the extremes")
    for name in scope.attributes:
        low, high = ends[name]
        low_title, high_title = ("most male (lowest female probability)", "most female") if name == "gender" \
            else ("lowest", "highest")
        section.body.append(f"<h3>{escape(name)}: {low_title}</h3>{strip(tiles(low, None))}"
                            f"<h3>{escape(name)}: {high_title}</h3>{strip(tiles(high, None))}")
    return section


def uncertain_section(positions: np.ndarray, largest: np.ndarray, tiles: Tiles) -> Section:
    """The faces most worth a human look, as `annotate labels export` orders them."""
    section = Section("uncertain", "Most uncertain faces")
    section.body.append('<p class="muted">Ordered as <code>annotate labels export</code> orders them: gender entropy, '
                        "1 − 2|v − 0.5| for a regressor, raised where a label disagrees; the face's largest.</p>")
    section.body.append(strip(tiles(positions, [f"doubt {largest[p]:.2f}" for p in positions])))
    return section


def agreement_section(scope: Scope, table_: FaceTable, labels: LabelColumns) -> Section:
    """Predictions against people's labels: gender confusion and calibration, error per regressor."""
    section = Section("agreement", "Agreement with labels")
    if not labels.positions:
        section.body.append('<p class="muted">No face in this report has a label. '
                            "<code>annotate labels import FILE</code> adds them.</p>")
        return section
    sources = ", ".join(f"{escape(source)} ({count:,})" for source, count in sorted(labels.sources.items()))
    section.body.append(f'<p class="muted">Newest label per face and attribute, as exports use them. Sources: {sources}.</p>')
    if "gender" in labels.positions and "gender" in table_.values:
        positions = labels.positions["gender"]
        found = gender_agreement(table_.values["gender"][positions], labels.values["gender"])
        (mm, mf), (fm, ff) = found.confusion
        matrix = table(["labelled \\ predicted", "male", "female"],
                       [("male", f"{mm:,}", f"{mf:,}"), ("female", f"{fm:,}", f"{ff:,}")], numeric=(1, 2))
        section.body.append(f"<h3>gender: {found.count:,} labelled faces, accuracy {number(found.accuracy)}</h3>"
                            f'<div class="attribute">{matrix}'
                            f'{chart(charts.reliability_chart(found), "reliability diagram")}</div>')
    rows, pairs = [], {}
    for name in scope.attributes:
        if name == "gender" or name not in labels.positions:
            continue
        positions, label_values = labels.positions[name], labels.values[name]
        found_r = regressor_agreement(table_.values[name][positions], label_values)
        rows.append((escape(name), f"{found_r.count:,}", number(found_r.mae), number(found_r.rmse),
                     number(found_r.bias), number(found_r.baseline_mae)))
        kept = sample(len(positions), SCATTER_POINTS)
        pairs[name] = (table_.values[name][positions[kept]], label_values[kept])
    if rows:
        section.body.append("<h3>Error per regressor</h3>" + table(
            ["attribute", "labelled faces", "MAE", "RMSE", "bias (prediction − label)", "MAE of the mean label"],
            rows, numeric=(1, 2, 3, 4, 5)))
        section.body.append(chart(charts.label_scatter_chart(pairs), "predictions against labels"))
    return section


def quality_section(table_: FaceTable, examples: dict[str, np.ndarray], tiles: Tiles, duplicates: list[str]) -> Section:
    """Data-quality flags with counts and examples, and near-duplicate images."""
    section = Section("quality", "Data quality")
    measured = table_.measured & ~np.isnan(table_.brightness)
    unreadable = int(np.sum(table_.measured & np.isnan(table_.brightness)))
    rows = [(escape(FLAG_TEXT[flag]), f"{int(table_.flags[flag].sum()):,}",
             number(100.0 * table_.flags[flag].sum() / max(int(measured.sum()), 1), 2) + " %") for flag in FLAGS]
    section.body.append(table(["flag", "faces", "of measured"], rows, numeric=(1, 2)))
    note = f"{int(measured.sum()):,} faces measured"
    if unreadable:
        note += f"; {unreadable:,} could not be measured (their files can no longer be read)"
    section.body.append(f'<p class="muted">{note}. Measured once per face on the aligned face (see README).</p>')
    if measured.any():
        section.body.append(chart(charts.quality_chart(table_.brightness, table_.sharpness), "brightness and sharpness"))
    for flag in FLAGS:
        if len(examples[flag]):
            section.body.append(f"<h3>{escape(FLAG_TEXT[flag])}</h3>" + strip(tiles(examples[flag], [
                f"brightness {table_.brightness[p]:.2f} sharpness {table_.sharpness[p]:.0f}"
                + (f" score {table_.score[p]:.3f}" if not np.isnan(table_.score[p]) else "") for p in examples[flag]])))
    section.body.extend(duplicates)
    return section
