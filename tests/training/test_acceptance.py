"""`annotate train` on the real labelled data of ../shared/data (minutes each; never committed, skipped without it)."""

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


def test_gender_reaches_the_seed_accuracy_on_its_held_out_test_split(settings, factory):
    metrics = trained_metrics(factory, "gender", "--data", str(SHARED_DATA / "gender-60px"))
    # Judged on the 15% test split (207 faces) that neither early stopping nor the learning rate saw. Split
    # seeds 112 / 1 / 2 gave 0.957 / 0.971 / 0.952 (README; seed 112 gave 0.971 on a rerun, training is not
    # bit-reproducible). The thinnest margin is one face (0.5 points); the 95% Wilson intervals are +-3-4 points.
    assert metrics["n_test"] >= 200 and metrics["test_accuracy"] >= 0.95, metrics
    assert metrics["recipe"]["augment"] and not metrics["collapsed"]


def test_mouth_crops_beat_the_baseline_three_times(settings, factory):
    metrics = trained_metrics(factory, "mouth", "--data", str(SHARED_DATA / "mouth-crops"), "--crop-level",
                              "--class-map", "mouth_open=1,mouth_closed=0")
    assert metrics["ratio"] >= 3.0 and not metrics["collapsed"], metrics
