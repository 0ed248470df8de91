"""`annotate train` on the real labelled data of ../shared/data (minutes each; never committed, skipped without it)."""

import math

import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.models.store import list_versions
from tests.conftest import SHARED_DATA

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_data,
    pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data not found at {SHARED_DATA}"),
]


def trained_metrics(factory, *args: str) -> dict:
    result = CliRunner().invoke(main, ["train", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with factory() as session:
        return list_versions(session)[-1].metrics


SEED_TEST_ACCURACY = 0.95  # MODELS.md: the seed's 95.0% on its own 200-image test set


def fewest_correct_of_a_model_as_good_as_the_seed(n: int, alpha: float = 0.05) -> int:
    """The fewest right answers on ``n`` faces that a model with the seed's accuracy gives in all but ``alpha``
    of test sets (one-sided binomial): fewer says the model is worse than the seed, not that the draw was bad."""
    below = 0.0
    for correct in range(n + 1):
        below += math.comb(n, correct) * SEED_TEST_ACCURACY ** correct * (1 - SEED_TEST_ACCURACY) ** (n - correct)
        if below > alpha:
            return correct
    return n


def test_gender_is_as_accurate_as_the_seed_on_its_held_out_test_split(settings, factory):
    metrics = trained_metrics(factory, "gender", "--data", str(SHARED_DATA / "gender-60px"))
    # Judged on the 15% test split (207 faces) that neither early stopping nor the learning rate saw. Runs
    # scored 0.952-0.971 (README) and once under 0.95: on 207 faces one face is 0.5 points, and a model exactly as
    # good as the seed scores under 95.0% about half the time, so a bar of 0.95 tests the draw, not the model.
    # Fail when it is worse than the seed's 95.0% beyond what the draw of 207 faces explains: under 191 right.
    n = metrics["n_test"]
    correct = round(metrics["test_accuracy"] * n)
    assert n >= 200 and correct >= fewest_correct_of_a_model_as_good_as_the_seed(n), metrics
    assert metrics["recipe"]["augment"] and not metrics["collapsed"]


def test_mouth_crops_beat_the_baseline_three_times(settings, factory):
    metrics = trained_metrics(factory, "mouth", "--data", str(SHARED_DATA / "mouth-crops"), "--crop-level",
                              "--class-map", "mouth_open=1,mouth_closed=0")
    assert metrics["ratio"] >= 3.0 and not metrics["collapsed"], metrics
