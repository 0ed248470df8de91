"""The report's numbers, computed with NumPy over whole arrays: summaries, collapse, extremes, doubt, agreement.

The doubt of a face is :mod:`annotator.labels.uncertainty`'s score (the same formulas, vectorised): gender's
entropy, a regressor's ``1 - 2|v - 0.5|``, raised to ``|prediction - label|`` where a person disagrees, the
face's largest attribute doubt first and their mean breaking ties.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from annotator.models.seed_report import COLLAPSE_RANGE, COLLAPSE_SAMPLES, is_collapsed

RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Distribution:
    """How one attribute's values spread over the run, overall and per predicted gender."""

    count: int
    mean: float
    std: float
    percentiles: dict[int, float]  # 5, 25, 50, 75, 95
    mean_male: float
    mean_female: float
    first_outputs: list[float]  # of the first faces, for the seed's collapse check
    collapsed: bool  # the seed's check: the first 15 faces' values spread less than 0.05
    narrow: bool  # the same test on the whole run: 5th to 95th percentile closer than 0.05


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def distribution(values: np.ndarray, female: np.ndarray) -> Distribution:
    """Summary of ``values`` (NaN ignored), split by the predicted gender ``female`` >= 0.5."""
    known = ~np.isnan(values)
    kept, is_female = values[known], female[known] >= 0.5
    if not len(kept):
        nan = float("nan")
        return Distribution(0, nan, nan, {p: nan for p in (5, 25, 50, 75, 95)}, nan, nan, [], False, False)
    spread = np.percentile(kept, [5, 25, 50, 75, 95])
    first = kept[:COLLAPSE_SAMPLES]
    return Distribution(
        count=len(kept), mean=float(kept.mean()), std=float(kept.std()),
        percentiles=dict(zip((5, 25, 50, 75, 95), (float(v) for v in spread))),
        mean_male=_mean(kept[~is_female]), mean_female=_mean(kept[is_female]),
        first_outputs=[float(v) for v in first],
        collapsed=len(first) >= 2 and is_collapsed(first),
        narrow=len(kept) >= 2 and bool(spread[4] - spread[0] < COLLAPSE_RANGE),
    )


def extremes(values: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ``count`` lowest values (lowest first) and the ``count`` highest (highest first)."""
    known = np.flatnonzero(~np.isnan(values))
    if not len(known):
        return known, known
    order = known[np.argsort(values[known], kind="stable")]
    count = min(count, len(order))
    return order[:count], order[::-1][:count]


def doubt(values: dict[str, np.ndarray], labels: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(largest, mean) doubt per face over its attributes; ``labels[name]`` is (positions, label values)."""
    columns = []
    for name, predicted in values.items():
        if name == "gender":
            p = np.clip(predicted, 0.0, 1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
            column = np.where((p == 0) | (p == 1), 0.0, entropy)
        else:
            column = 1.0 - 2.0 * np.abs(np.clip(predicted, 0.0, 1.0) - 0.5)
        if name in labels:
            positions, label_values = labels[name]
            column = column.copy()
            column[positions] = np.maximum(column[positions], np.abs(predicted[positions] - label_values))
        columns.append(np.where(np.isnan(predicted), np.nan, column))
    if not columns:
        return np.zeros(0), np.zeros(0)
    stacked = np.vstack(columns)
    with warnings.catch_warnings():  # a face with no value at all has no doubt: 0, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nan_to_num(np.nanmax(stacked, axis=0)), np.nan_to_num(np.nanmean(stacked, axis=0))


def most_doubtful(largest: np.ndarray, mean: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` most doubtful faces, most doubtful first."""
    return np.lexsort((-mean, -largest))[:count]


@dataclass(frozen=True)
class GenderAgreement:
    """The gender model against people's labels."""

    confusion: list[list[int]]  # rows: labelled male, female; columns: predicted male, female
    accuracy: float
    bins: list[tuple[float, float, float, int]]  # (low edge, mean predicted, fraction labelled female, faces)

    @property
    def count(self) -> int:
        """Labelled faces compared."""
        return sum(map(sum, self.confusion))


def gender_agreement(female_prob: np.ndarray, label: np.ndarray) -> GenderAgreement:
    """Confusion matrix, accuracy and reliability bins of predicted female probabilities against labels."""
    truth, predicted = label >= 0.5, female_prob >= 0.5
    confusion = [[int(np.sum((truth == t) & (predicted == p))) for p in (False, True)] for t in (False, True)]
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    which = np.clip(np.digitize(female_prob, edges[1:-1]), 0, RELIABILITY_BINS - 1)
    counts = np.bincount(which, minlength=RELIABILITY_BINS)
    mean_predicted = np.bincount(which, weights=female_prob, minlength=RELIABILITY_BINS)
    labelled_female = np.bincount(which, weights=truth.astype(np.float64), minlength=RELIABILITY_BINS)
    bins = [(float(edges[i]), float(mean_predicted[i] / counts[i]), float(labelled_female[i] / counts[i]), int(counts[i]))
            for i in range(RELIABILITY_BINS) if counts[i]]
    accuracy = float(np.mean(truth == predicted)) if len(truth) else float("nan")
    return GenderAgreement(confusion, accuracy, bins)


@dataclass(frozen=True)
class RegressorAgreement:
    """One regressor against people's labels."""

    count: int
    mae: float
    rmse: float
    bias: float  # mean of prediction minus label
    baseline_mae: float  # predicting the mean label for every face


def regressor_agreement(predicted: np.ndarray, label: np.ndarray) -> RegressorAgreement:
    """Errors of predictions against labels, with the mean-label baseline for scale."""
    error = predicted - label
    return RegressorAgreement(len(label), float(np.mean(np.abs(error))), float(np.sqrt(np.mean(error ** 2))),
                              float(np.mean(error)), float(np.mean(np.abs(label - label.mean()))))


def sample(count: int, limit: int, seed: int = 0) -> np.ndarray:
    """At most ``limit`` positions out of ``count``, evenly random and sorted, the same for the same input."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))
