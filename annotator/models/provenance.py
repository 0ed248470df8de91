"""What a prediction records of how it was computed beyond its model versions: the chain's precision.

A prediction names the model version that computed it and the gender version it was computed with
(:class:`db.models.Prediction`). A chain run in ``bfloat16`` or ``float16`` (``ANNOTATE_PRECISION``) gives values
within 0.01 of float32 but not equal to them, so such a prediction records its precision in its ``extra`` and is
shown and exported as ``eyes@3+bfloat16`` (semantic versioning's build metadata: the same version, built
differently). float32, the default, records nothing and reads ``eyes@3``.
"""

from __future__ import annotations

from typing import Any

from annotator.settings import DEFAULT_PRECISION


def precision_extra(precision: str) -> dict[str, str]:
    """What a prediction computed in ``precision`` records of it in its ``extra``: nothing for float32."""
    return {} if precision == DEFAULT_PRECISION else {"precision": precision}


def computed_by(label: str, extra: dict[str, Any] | None) -> str:
    """A prediction's source as shown and exported: its version ``label``, with its precision unless float32."""
    precision = (extra or {}).get("precision")
    return f"{label}+{precision}" if precision else label
