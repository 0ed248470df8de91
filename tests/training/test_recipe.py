import numpy as np
import pytest

from annotator.models.seed_report import gender_report, is_collapsed, regressor_report


def test_regressor_report_reproduces_the_seed_arithmetic():
    # Two genders with different means; the baseline predicts each gender's training mean.
    train_targets = np.array([1.0, 1.0, 0.0, 0.0, 0.5, 0.5])
    train_gender = np.array([0, 0, 0, 1, 1, 1])
    val_targets = np.array([1.0, 0.0, 0.5, 1.0])
    val_gender = np.array([0, 0, 1, 1])
    report = regressor_report(train_targets=train_targets, train_gender=train_gender, val_targets=val_targets,
                              val_gender=val_gender, val_outputs=np.array([0.9, 0.1, 0.5, 0.8]),
                              first_outputs=np.linspace(0, 1, 15))
    assert report.mean_male == pytest.approx(2 / 3) and report.mean_female == pytest.approx(1 / 3)
    assert report.baseline_mse_male == pytest.approx(((1 - 2 / 3) ** 2 + (2 / 3) ** 2) / 2)
    assert report.baseline_mse_female == pytest.approx(((0.5 - 1 / 3) ** 2 + (1 - 1 / 3) ** 2) / 2)
    assert report.baseline_mse == pytest.approx((report.baseline_mse_male + report.baseline_mse_female) / 2)
    assert report.val_mse == pytest.approx((0.01 + 0.01 + 0 + 0.04) / 4)
    assert report.ratio == pytest.approx(report.baseline_mse / report.val_mse)
    assert not report.collapsed
    assert "ratio" in report.format() and report.to_dict()["kind"] == "regressor"


def test_collapse_check():
    assert is_collapsed(np.full(15, 0.62) + np.linspace(0, 0.01, 15))
    assert not is_collapsed(np.linspace(0.2, 0.8, 15))
    assert is_collapsed(np.tile([[0.5, 0.5]], (15, 1)))


def test_gender_report_counts_the_confusion_matrix():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    report = gender_report(val_gender=np.array([0, 0, 1, 1]), val_probs=probs, first_probs=probs, n_train=10)
    assert report.confusion == [[1, 1], [1, 1]] and report.val_accuracy == 0.5
    assert "confusion" in report.format()


def test_a_short_training_run_returns_a_report_and_history():
    from annotator.images.portraits import generate_portraits
    from annotator.models.specs import MOUTH
    from annotator.training.recipe import train_model

    p = generate_portraits(120, seed=0)
    epochs = []
    result = train_model(MOUTH, p.faces, p.gender, p.mouth, epochs=2, on_epoch=lambda e, logs: epochs.append(e))
    assert epochs == [1, 2] and result.epochs_run == 2
    assert set(result.history) >= {"loss", "val_loss"}
    assert result.report.n_train + result.report.n_val == 120 and len(result.report.first_outputs) == 15


def test_gender_learns_soft_targets_and_reports_against_the_hard_gender():
    from annotator.images.portraits import generate_portraits
    from annotator.models.crops import crop_batch
    from annotator.models.specs import GENDER
    from annotator.training.recipe import train_on_inputs

    p = generate_portraits(120, seed=1)
    soft = np.where(p.gender == 1, 0.9, 0.2).astype(np.float32)  # a teacher's female probabilities
    result = train_on_inputs(GENDER, crop_batch(p.faces, GENDER), soft, epochs=1, test_split=0.0, augment=False)
    assert result.report.n_train + result.report.n_val == 120
    assert sum(map(sum, result.report.confusion)) == result.report.n_val  # hard genders 0/1, not 0.2/0.9
    assert np.isfinite(result.history["loss"][0]) and result.history["loss"][0] > 0


@pytest.mark.slow
def test_demo_models_meet_the_quality_bar():
    from annotator.training.demo import evaluate_demo_models, train_demo_models

    results = train_demo_models(seed=0, echo=lambda line: None)
    metrics = evaluate_demo_models(results)
    assert metrics["gender_accuracy"] >= 0.95
    for name in ("eyes", "mouth", "background_mean"):
        assert metrics[f"{name}_ratio"] >= 3.0
        assert metrics[f"{name}_collapsed"] is False
