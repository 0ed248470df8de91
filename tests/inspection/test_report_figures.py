import numpy as np
import pytest

from annotator.inspection.report.figures import (
    distribution,
    doubt,
    extremes,
    gender_agreement,
    most_doubtful,
    regressor_agreement,
)
from annotator.labels.uncertainty import face_uncertainty


def test_doubt_is_the_uncertainty_that_label_exports_sort_by():
    rng = np.random.default_rng(4)
    values = {"gender": rng.random(200), "eyes": rng.random(200), "mouth": rng.random(200)}
    values["gender"][:3] = [0.0, 1.0, 0.5]
    labelled = np.array([5, 17, 40])
    labels = {"eyes": (labelled, np.array([0.0, 1.0, 0.5]))}
    largest, mean = doubt(values, labels)
    for face in range(200):
        expected = face_uncertainty({name: float(v[face]) for name, v in values.items()},
                                    {"eyes": float(labels["eyes"][1][list(labelled).index(face)])}
                                    if face in labelled else {})
        assert (largest[face], mean[face]) == pytest.approx(expected, abs=1e-9)
    order = most_doubtful(largest, mean, 10)
    assert largest[order[0]] == largest.max() and np.all(np.diff(largest[order]) <= 0)


def test_missing_values_do_not_count_in_doubt_and_extremes():
    values = np.array([0.4, np.nan, 0.1, 0.9, 0.6])
    low, high = extremes(values, 2)
    assert low.tolist() == [2, 0] and high.tolist() == [3, 4]
    largest, _ = doubt({"eyes": values}, {})
    assert largest[1] == 0.0


def test_the_seed_collapse_check_and_the_whole_run_spread():
    female = np.r_[np.zeros(50), np.ones(50)]
    flat = distribution(np.full(100, 0.51) + np.linspace(0, 0.01, 100), female)
    assert flat.collapsed and flat.narrow
    spread = distribution(np.r_[np.linspace(0, 0.2, 50), np.linspace(0.8, 1, 50)], female)
    assert not spread.collapsed and not spread.narrow
    assert spread.mean_male == pytest.approx(0.1) and spread.mean_female == pytest.approx(0.9)


def test_gender_confusion_and_reliability_bins():
    predicted = np.array([0.05, 0.05, 0.95, 0.95, 0.95, 0.55])
    labels = np.array([0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    found = gender_agreement(predicted, labels)
    assert found.confusion == [[1, 1], [1, 3]] and found.accuracy == pytest.approx(4 / 6)
    assert found.bins == [(0.0, pytest.approx(0.05), 0.5, 2), (0.5, pytest.approx(0.55), 1.0, 1),
                          (pytest.approx(0.9), pytest.approx(0.95), pytest.approx(2 / 3), 3)]


def test_regressor_errors():
    found = regressor_agreement(np.array([0.5, 1.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    assert (found.count, found.mae, found.bias) == (3, pytest.approx(1 / 6), pytest.approx(1 / 6))
    assert found.rmse == pytest.approx(np.sqrt(0.25 / 3))

