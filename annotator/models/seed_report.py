"""The seed documents' way of judging a model (``MODELS.md``), as pure NumPy on arrays of results."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

COLLAPSE_SAMPLES = 15
# Outputs spread over less than this on the first 15 samples mean the model predicts one value for all.
COLLAPSE_RANGE = 0.05


def json_ready(value: Any) -> Any:
    """``value`` with NaN and infinities as None: strict JSON (PostgreSQL's json type) has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def is_collapsed(outputs: np.ndarray) -> bool:
    """True when the outputs on the first samples are all nearly the same value."""
    values = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    return bool(np.all(values.max(axis=0) - values.min(axis=0) < COLLAPSE_RANGE))


@dataclass(frozen=True)
class RegressorReport:
    """Val MSE against the per-gender-mean baseline, and the collapse check."""

    val_mse: float
    mean_male: float
    mean_female: float
    baseline_mse_male: float
    baseline_mse_female: float
    baseline_mse: float
    ratio: float
    first_outputs: list[float]
    collapsed: bool
    n_train: int
    n_val: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, stored with the model version (NaN, e.g. a gender absent from the data, as null)."""
        return json_ready({"kind": "regressor", **asdict(self)})

    def format(self) -> str:
        """The report as the seeds print it."""
        outputs = " ".join(f"{v:.3f}" for v in self.first_outputs)
        verdict = "COLLAPSED: all outputs nearly equal, the model did not learn" if self.collapsed else "no collapse"
        if math.isnan(self.mean_male) or math.isnan(self.mean_female):  # gender unknown: one baseline group
            mean = self.mean_male if math.isnan(self.mean_female) else self.mean_female
            groups = [f"  mean label         {mean:.4f}   (one group: gender unknown)",
                      f"  baseline MSE       {self.baseline_mse:.4f}   (predicting the mean label)"]
        else:
            groups = [f"  per-gender mean    male {self.mean_male:.4f} / female {self.mean_female:.4f}",
                      (f"  baseline MSE       male {self.baseline_mse_male:.4f} / female "
                       f"{self.baseline_mse_female:.4f} -> {self.baseline_mse:.4f}")]
        return "\n".join([
            f"  val MSE            {self.val_mse:.4f}   {_counts(self.n_train, self.n_val)}",
            *groups,
            f"  ratio              {self.ratio:.2f}x   (baseline / val)",
            f"  first {len(self.first_outputs)} outputs   {outputs}",
            f"  collapse check     {verdict}",
        ])


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for z=1.96): honest at small n and near 0 or 1."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class GenderReport:
    """Validation accuracy, the confusion matrix and the collapse check of the gender classifier."""

    val_accuracy: float
    confusion: list[list[int]]  # rows: true male, female; columns: predicted male, female
    first_outputs: list[float]  # female probability of the first training samples
    collapsed: bool
    n_train: int
    n_val: int
    # The held-out test split, which no callback saw (NaN and n_test 0 when there is none).
    test_accuracy: float = float("nan")
    test_ci95: tuple[float, float] = (float("nan"), float("nan"))  # Wilson interval
    test_confusion: list[list[int]] | None = None
    n_test: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, stored with the model version."""
        return json_ready({"kind": "gender", **asdict(self)})

    def format(self) -> str:
        """Accuracy, confusion matrix and collapse check."""
        (mm, mf), (fm, ff) = self.confusion
        verdict = "COLLAPSED: all outputs nearly equal, the model did not learn" if self.collapsed else "no collapse"
        return "\n".join([
            f"  val accuracy       {self.val_accuracy:.4f}   {_counts(self.n_train, self.n_val)}",
            *([(f"  TEST accuracy      {self.test_accuracy:.4f}   (95% CI {self.test_ci95[0]:.3f}-"
               f"{self.test_ci95[1]:.3f}, {self.n_test} held-out rows no callback saw)")] if self.n_test else []),
            "  confusion          true\\pred  male  female" + ("   (validation)" if self.n_test else ""),
            f"                     male     {mm:5d}  {mf:6d}",
            f"                     female   {fm:5d}  {ff:6d}",
            f"  first {len(self.first_outputs)} female_prob " + " ".join(f"{v:.3f}" for v in self.first_outputs),
            f"  collapse check     {verdict}",
        ])


def regressor_report(*, train_targets: np.ndarray, train_gender: np.ndarray, val_targets: np.ndarray,
                     val_gender: np.ndarray, val_outputs: np.ndarray, first_outputs: np.ndarray) -> RegressorReport:
    """Seed report of a regressor; genders are 0 (male) / 1 (female), per-gender means from the training split."""
    val_targets, val_outputs = np.asarray(val_targets, np.float64), np.asarray(val_outputs, np.float64).ravel()
    means = [float(np.mean(train_targets[train_gender == g])) if np.any(train_gender == g) else float("nan")
             for g in (0, 1)]
    baselines = [float(np.mean((val_targets[val_gender == g] - means[g]) ** 2)) if np.any(val_gender == g)
                 else float("nan") for g in (0, 1)]
    val_mse = float(np.mean((val_targets - val_outputs) ** 2))
    baseline = float(np.nanmean(baselines))
    first = np.asarray(first_outputs, np.float64).ravel()[:COLLAPSE_SAMPLES]
    return RegressorReport(
        val_mse=val_mse, mean_male=means[0], mean_female=means[1], baseline_mse_male=baselines[0],
        baseline_mse_female=baselines[1], baseline_mse=baseline,
        ratio=baseline / val_mse if val_mse > 0 else float("inf"), first_outputs=[float(v) for v in first],
        collapsed=is_collapsed(first), n_train=len(train_targets), n_val=len(val_targets),
    )


def _confusion(truth: np.ndarray, probs: np.ndarray) -> tuple[list[list[int]], int]:
    """(confusion matrix, correct count) of softmax outputs against 0/1 genders."""
    predicted = np.asarray(probs).reshape(len(truth), 2).argmax(axis=1)
    truth = np.asarray(truth).astype(int)
    confusion = [[int(np.sum((truth == t) & (predicted == p))) for p in (0, 1)] for t in (0, 1)]
    return confusion, int(np.sum(predicted == truth))


def gender_report(*, val_gender: np.ndarray, val_probs: np.ndarray, first_probs: np.ndarray, n_train: int,
                  test_gender: np.ndarray | None = None, test_probs: np.ndarray | None = None) -> GenderReport:
    """Seed report of the gender classifier from its softmax outputs, plus the test split's when there is one."""
    confusion, correct = _confusion(np.asarray(val_gender), np.asarray(val_probs))
    n_val = len(val_gender)
    first = np.asarray(first_probs)[:COLLAPSE_SAMPLES]
    test: dict[str, Any] = {}
    if test_gender is not None and test_probs is not None and len(test_gender):
        test_confusion, test_correct = _confusion(np.asarray(test_gender), np.asarray(test_probs))
        test = {"test_accuracy": test_correct / len(test_gender), "n_test": len(test_gender),
                "test_ci95": wilson_interval(test_correct, len(test_gender)), "test_confusion": test_confusion}
    return GenderReport(
        val_accuracy=correct / n_val if n_val else float("nan"), confusion=confusion,
        first_outputs=[float(v) for v in first[:, 1]], collapsed=is_collapsed(first), n_train=n_train,
        n_val=n_val, **test,
    )


@dataclass(frozen=True)
class BinaryReport:
    """Validation accuracy, confusion matrix and collapse check of a yes/no classifier (identity)."""

    val_accuracy: float
    val_loss: float  # binary cross-entropy on the validation split
    confusion: list[list[int]]  # rows: true no, yes; columns: predicted no, yes (threshold 0.5)
    first_outputs: list[float]
    collapsed: bool
    n_train: int
    n_val: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, stored with the model version."""
        return json_ready({"kind": "binary", **asdict(self)})

    def format(self) -> str:
        """Accuracy, confusion matrix and collapse check."""
        (nn, ny), (yn, yy) = self.confusion
        verdict = "COLLAPSED: all outputs nearly equal, the model did not learn" if self.collapsed else "no collapse"
        return "\n".join([
            f"  val accuracy       {self.val_accuracy:.4f}   {_counts(self.n_train, self.n_val)}",
            f"  val loss           {self.val_loss:.4f}   (binary cross-entropy)",
            "  confusion          true\\pred  other  person",
            f"                     other    {nn:5d}  {ny:6d}",
            f"                     person   {yn:5d}  {yy:6d}",
            f"  first {len(self.first_outputs)} outputs   " + " ".join(f"{v:.3f}" for v in self.first_outputs),
            f"  collapse check     {verdict}",
        ])


def binary_report(*, val_labels: np.ndarray, val_outputs: np.ndarray, first_outputs: np.ndarray,
                  n_train: int) -> BinaryReport:
    """Seed-style report of a sigmoid yes/no classifier from its outputs."""
    outputs = np.asarray(val_outputs, np.float64).ravel()
    truth = np.asarray(val_labels).astype(int).ravel()
    predicted = (outputs >= 0.5).astype(int)
    clipped = np.clip(outputs, 1e-7, 1 - 1e-7)
    loss = float(-np.mean(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped))) if len(truth) else float("nan")
    first = np.asarray(first_outputs, np.float64).ravel()[:COLLAPSE_SAMPLES]
    return BinaryReport(
        val_accuracy=float(np.mean(predicted == truth)) if len(truth) else float("nan"), val_loss=loss,
        confusion=[[int(np.sum((truth == t) & (predicted == p))) for p in (0, 1)] for t in (0, 1)],
        first_outputs=[float(v) for v in first], collapsed=is_collapsed(first), n_train=n_train, n_val=len(truth),
    )


def _counts(n_train: int, n_val: int) -> str:
    # A comparison judges stored models on a labelled set: there is no training split to count.
    return f"(train {n_train}, val {n_val})" if n_train else f"({n_val} labelled images)"
