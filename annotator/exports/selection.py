"""Which attributes and faces an export carries: attribute choice, gender class and confidence, filters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from annotator.errors import ExportError
from annotator.exports.query import FaceRow
from annotator.models.specs import attribute_names

GENDER = "gender"
MALE, FEMALE = "male", "female"


def exportable_attributes() -> list[str]:
    """Names ``--attribute`` accepts: gender, then the regressors of the registry in chain order."""
    return [GENDER, *attribute_names(include_optional=True)]


def resolve_attributes(requested: Iterable[str], fmt: str, active: Iterable[str] = ()) -> list[str]:
    """The attributes an export carries, in registry order.

    By default: gender, every required regressor and the optional models among ``active`` (the names with an
    active version); gender alone for folders.
    """
    valid = exportable_attributes()
    chosen = set(requested)
    unknown = sorted(chosen.difference(valid))
    if unknown:
        raise ExportError(f"Unknown attribute {', '.join(map(repr, unknown))}. "
                          f"Valid attributes: {', '.join(valid)}.")
    if not chosen:
        # Folders are gender classes: their only target is gender. Optional models are exported when asked for.
        chosen = {GENDER} if fmt == "folders" else {GENDER, *attribute_names(), *active}
    return [name for name in valid if name in chosen]


def regressors(attributes: Sequence[str]) -> list[str]:
    """The single-value attributes among ``attributes`` (gender has its two probability columns)."""
    return [name for name in attributes if name != GENDER]


def gender_class(row: FaceRow) -> str | None:
    """The class, "male" or "female", by the larger probability (ties are male); None without gender."""
    male, female = row.values.get("male_prob"), row.values.get("female_prob")
    if male is None or female is None:
        return None
    return FEMALE if female > male else MALE


def gender_confidence(row: FaceRow) -> float:
    """The larger gender probability; a gender label counts as certain (1.0)."""
    if row.is_labelled(GENDER):
        return 1.0
    return max(row.values.get("male_prob", 0.0), row.values.get("female_prob", 0.0))


def select_rows(rows: Iterable[FaceRow], *, source: str, attributes: Sequence[str],
                min_confidence: float) -> list[FaceRow]:
    """Rows kept by the ``labels`` source (a label for every attribute) and by ``min_confidence``."""
    kept = []
    for row in rows:
        if source == "labels" and not all(row.is_labelled(name) for name in attributes):
            continue
        if gender_confidence(row) < min_confidence:
            continue
        kept.append(row)
    return kept
