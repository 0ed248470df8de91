"""Out-of-fold outputs: train the seed recipe k times, each time predicting the fold it did not see.

A model cannot judge the labels it learnt, so every row's output comes from a model trained on the other
folds only. Folds keep groups (faces of one image, near-duplicates, a person) whole and are stratified by the
label (gender, or a regressor's label rounded to 0 / 0.5 / 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from annotator.models.specs import ModelSpec, OutputKind
from annotator.training.recipe import EpochCallback, duplicate_groups, model_outputs, train_on_inputs

DEFAULT_FOLDS = 3
"""Three trainings on two thirds of the labels each. Measured on the 1,382 faces of gender-60px with 10% of the
labels flipped: 5.5 minutes on this project's 2-core CPU (shared), and 126 of the 138 flipped labels (91%)
among the 276 faces ranked most suspicious."""
FoldCallback = Callable[[int, int, int, int], None]  # (fold, folds, epochs run, rows held out)


def _strata(spec: ModelSpec, labels: np.ndarray) -> np.ndarray:
    if spec.output is OutputKind.GENDER_SOFTMAX:
        return np.asarray(labels).astype(int)
    return np.rint(np.asarray(labels, np.float64) * 2).astype(int)  # 0, 0.5, 1 and whatever lies nearest


def fold_of(spec: ModelSpec, labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of each row: groups whole, classes spread evenly, shuffled by ``seed``."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    assigned = np.full(len(labels), -1, int)
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), _strata(spec, labels), groups)):
        assigned[held] = fold
    return assigned


def out_of_fold_outputs(spec: ModelSpec, images: np.ndarray, labels: np.ndarray, *, gender: np.ndarray | None = None,
                        groups: np.ndarray | None = None, folds: int = DEFAULT_FOLDS, epochs: int = 40,
                        seed: int = 112, on_fold: FoldCallback | None = None,
                        on_epoch: EpochCallback | None = None) -> np.ndarray:
    """Each row's output from the model of the folds it is not in: (n, 2) gender softmax, or (n,) values.

    ``images`` are model inputs at ``spec.input_shape``; ``gender`` (0/1, or None for neutral 0.5/0.5) is a
    regressor's gender input; ``groups`` keep rows together (default: identical images). Each training is the
    seed recipe with its validation split (early stopping), without the gender model's test split.
    """
    labels = np.asarray(labels)
    groups = duplicate_groups(images) if groups is None else np.asarray(groups)
    assigned = fold_of(spec, labels, groups, folds, seed)
    is_gender = spec.output is OutputKind.GENDER_SOFTMAX
    outputs = np.zeros((len(labels), 2) if is_gender else len(labels), np.float32)
    for fold in range(folds):
        train, held = np.flatnonzero(assigned != fold), np.flatnonzero(assigned == fold)
        result = train_on_inputs(spec, images[train], labels[train],
                                 gender=None if gender is None else gender[train], groups=groups[train],
                                 epochs=epochs, seed=seed + fold, test_split=0.0, on_epoch=on_epoch)
        if is_gender:
            inputs: list[np.ndarray] = [images[held]]
        else:
            gender_input = (np.full((len(held), 2), 0.5, np.float32) if gender is None
                            else np.eye(2, dtype=np.float32)[np.asarray(gender)[held].astype(int)])
            inputs = [images[held], gender_input]
        outputs[held] = model_outputs(result.model, inputs).reshape(outputs[held].shape)
        if on_fold is not None:
            on_fold(fold + 1, folds, result.epochs_run, len(held))
    return outputs
