"""Augmentation, the three-way split and the test-accuracy interval of `annotate train` (fast, no real data)."""

import numpy as np
import pytest

from annotator.models.seed_report import gender_report, wilson_interval
from annotator.training.recipe import duplicate_groups, split_three


def test_augmented_batches_keep_shape_range_and_labels():
    from annotator.training.augmentation import augmented_dataset

    rng = np.random.default_rng(0)
    images = rng.random((10, 60, 60, 3), dtype=np.float32)
    labels = np.arange(10)
    batches = list(augmented_dataset([images], labels, batch_size=4, seed=1))
    assert [x.shape[0] for x, _ in batches] == [4, 4, 2]
    seen = np.concatenate([y.numpy() for _, y in batches])
    assert sorted(seen) == list(range(10))  # shuffled, each image once per epoch
    x, y = batches[0]
    assert tuple(x.shape[1:]) == (60, 60, 3) and float(np.min(x)) >= 0.0 and float(np.max(x)) <= 1.0
    # The images are changed, not passed through.
    assert not np.allclose(x.numpy(), images[y.numpy()])


def test_a_second_input_passes_through_unchanged():
    from annotator.training.augmentation import augmented_dataset

    images = np.zeros((6, 32, 60, 3), np.float32)
    gender = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1, 0]]
    (image_batch, gender_batch), y = next(iter(augmented_dataset([images, gender], np.arange(6.0), batch_size=6,
                                                                  seed=0)))
    assert tuple(image_batch.shape) == (6, 32, 60, 3)
    np.testing.assert_array_equal(gender_batch.numpy(), gender[y.numpy().astype(int)])


def test_three_way_split_is_disjoint_complete_and_sized():
    train, val, test = split_three(1000, 0.1, 0.15, seed=3)
    assert len(test) == 150 and len(val) == 100 and len(train) == 750
    assert sorted(np.concatenate([train, val, test])) == list(range(1000))
    # The test rows do not depend on the validation share: tuning it cannot move faces into the test split.
    assert set(split_three(1000, 0.2, 0.15, seed=3)[2]) == set(test)


def test_without_a_test_split_the_test_is_empty():
    train, val, test = split_three(50, 0.1, 0.0, seed=0)
    assert len(test) == 0 and len(val) == 5 and len(train) == 45
    with pytest.raises(ValueError, match="leave rows to train on"):
        split_three(50, 0.5, 0.5, seed=0)


def test_identical_images_land_on_one_side():
    rng = np.random.default_rng(0)
    images = rng.random((40, 8, 8, 3)).astype(np.float32)
    images[1] = images[0]
    images[2] = images[0]  # three copies of one file
    groups = duplicate_groups(images)
    assert groups[0] == groups[1] == groups[2] and len(set(groups)) == 38
    for seed in range(10):
        sides = [next(i for i, rows in enumerate(split_three(40, 0.2, 0.2, seed, groups)) if row in rows)
                 for row in (0, 1, 2)]
        assert len(set(sides)) == 1


def test_wilson_interval():
    low, high = wilson_interval(190, 200)
    assert low == pytest.approx(0.9103, abs=1e-3) and high == pytest.approx(0.9725, abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] < 1.0


def test_gender_report_shows_the_test_split():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    truth = np.array([0, 1, 1, 1])
    report = gender_report(val_gender=truth, val_probs=probs, first_probs=probs, n_train=10, test_gender=truth,
                           test_probs=probs)
    assert report.test_accuracy == 0.75 and report.n_test == 4 and report.test_confusion == [[1, 0], [1, 2]]
    assert "TEST accuracy      0.7500" in report.format() and report.to_dict()["test_ci95"][0] < 0.75
