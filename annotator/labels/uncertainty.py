"""How much a face is worth a human look: one score in 0..1 from its predictions and any existing labels.

Per attribute (1 = most doubtful):
- gender: the entropy of (male_prob, female_prob) in bits (1 at 50/50, 0 when certain);
- a regressor with value v: ``1 - 2 * |v - 0.5|`` (1 at 0.5, halfway between the labels 0 and 1);
- with a human label for the attribute: the larger of that and ``|prediction - label|`` (gender: female
  probability against the label), so a model that disagrees with a person comes first.
A face's score is the largest of its attributes' (one doubtful value is enough to look); ties are broken by
their mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def gender_uncertainty(female_prob: float) -> float:
    """Binary entropy, in bits, of the gender softmax."""
    p = min(max(female_prob, 0.0), 1.0)
    if p in (0.0, 1.0):
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


def regressor_uncertainty(value: float) -> float:
    """1 at 0.5, 0 at either end."""
    return 1.0 - 2.0 * abs(min(max(value, 0.0), 1.0) - 0.5)


def attribute_uncertainty(attribute: str, prediction: float, label: float | None = None) -> float:
    """The doubt about one prediction (gender given as the female probability), raised by a disagreeing label."""
    doubt = gender_uncertainty(prediction) if attribute == "gender" else regressor_uncertainty(prediction)
    return doubt if label is None else max(doubt, abs(prediction - label))


def face_uncertainty(predictions: Mapping[str, float], labels: Mapping[str, float]) -> tuple[float, float]:
    """(largest, mean) doubt over a face's predictions; sort by it, descending, for most uncertain first."""
    doubts = [attribute_uncertainty(name, value, labels.get(name)) for name, value in predictions.items()]
    if not doubts:
        return (0.0, 0.0)
    return (max(doubts), sum(doubts) / len(doubts))


def disagreement(predictions: Mapping[str, float], teachers: Mapping[str, float]) -> float:
    """The largest ``|chain - teacher|`` over the attributes both have (gender as the female probability); 0 when
    they share none. A face where the distilled model and its teacher part ways is one neither can be sure of."""
    gaps = [abs(value - teachers[name]) for name, value in predictions.items() if name in teachers]
    return max(gaps, default=0.0)
