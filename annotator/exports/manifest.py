"""The manifest written next to every export: what was asked, what came out, and a hash of the rows."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from annotator.exports.columns import record
from annotator.exports.grouping import SplitGroups
from annotator.exports.options import ExportOptions
from annotator.exports.query import LABEL_PREFIX, FaceRow
from annotator.exports.selection import GENDER, gender_class, regressors
from annotator.teachers.models import SOURCE_PREFIX as TEACHER_PREFIX

ALL = "all"
"""The split name counts are filed under when an export is not split."""


def rows_sha256(rows: Sequence[FaceRow], attributes: list[str]) -> str:
    """SHA-256 of the exported rows as canonical JSON lines: the same rows hash the same in any format."""
    digest = hashlib.sha256()
    with_split = any(row.split is not None for row in rows)
    for row in rows:
        line = json.dumps(record(row, regressors(attributes), with_split), sort_keys=True, separators=(",", ":"))
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def split_counts(rows: Sequence[FaceRow], splits: Sequence[str] = ()) -> dict[str, dict[str, int]]:
    """Faces per split (``all`` when not split), each with its total and its count per gender class."""
    counts: dict[str, Counter[str]] = {name: Counter() for name in (splits or [ALL])}
    for row in rows:
        bucket = counts.setdefault(row.split or ALL, Counter())
        bucket["total"] += 1
        bucket[gender_class(row) or "unknown"] += 1
    return {name: {"total": c["total"], **{k: v for k, v in sorted(c.items()) if k != "total"}}
            for name, c in counts.items()}


def _annotate_version() -> str:
    try:
        return version("annotate")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_manifest(options: ExportOptions, rows: Sequence[FaceRow], attributes: list[str], files: Sequence[str],
                   counts: dict[str, dict[str, int]], now: datetime | None = None,
                   groups: SplitGroups | None = None) -> dict[str, Any]:
    """The manifest of an export of ``rows`` carrying ``attributes`` into ``files`` (relative names).

    ``counts`` are the :func:`split_counts` of ``rows``, which the caller has already computed; ``groups``,
    for a split, how its images were grouped (counted under ``counts.groups``).
    """
    used = [row.sources.get(name) for row in rows for name in (GENDER, *regressors(attributes))]
    return {
        "format": options.format,
        "options": {**options.to_dict(), "attributes": attributes},
        "files": list(files),
        "counts": {"total": len(rows), "splits": counts,
                   **({"groups": groups.to_manifest()} if groups is not None else {})},
        "model_versions": sorted({s for s in used if s and not s.startswith((LABEL_PREFIX, TEACHER_PREFIX))}),
        "teachers": sorted({s.removeprefix(TEACHER_PREFIX) for s in used if s and s.startswith(TEACHER_PREFIX)}),
        "label_sources": sorted({s.removeprefix(LABEL_PREFIX) for s in used if s and s.startswith(LABEL_PREFIX)}),
        "created_at": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "annotate_version": _annotate_version(),
        "rows_sha256": rows_sha256(rows, attributes),
    }


def manifest_path(output: Path, is_folder: bool) -> Path:
    """``manifest.json`` inside a folder output, ``<output>.manifest.json`` next to a file."""
    return output / "manifest.json" if is_folder else output.with_name(output.name + ".manifest.json")


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    """Write the manifest as indented JSON."""
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
