"""Starter ("DEMO") models: the whole chain trained on generated portraits, so everything runs offline.

Same recipe as the seeds (Adam 1e-3, batch 32, MSE, ReduceLROnPlateau + EarlyStopping, 10% validation) but
fewer epochs, so all four models train in about two minutes on two CPU cores. The portraits are easy for a
CNN; the point is a working chain with honest reports, not accuracy on real photos.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from annotator.images.portraits import generate_portraits
from annotator.models.chain import LoadedModel, run_chain
from annotator.models.seed_report import is_collapsed
from annotator.models.specs import OutputKind, chain_order
from annotator.models.store import register_model
from annotator.training.recipe import TrainingResult, train_model

DEMO_SAMPLES = 2000  # the seeds' own training-set size
DEMO_EPOCHS = 6
EVALUATION_SEED_OFFSET = 10_000


def train_demo_models(*, seed: int = 0, echo: Callable[[str], None] = print) -> list[TrainingResult]:
    """Train every model of the chain on generated portraits; echo progress and each seed report."""
    portraits = generate_portraits(DEMO_SAMPLES, seed)
    results = []
    for spec in chain_order():
        echo(f"{spec.name}: training on {DEMO_SAMPLES} generated portraits (DEMO)")
        targets = None if spec.output is OutputKind.GENDER_SOFTMAX else portraits.labels(spec.name)

        def progress(epoch: int, logs: dict[str, float], name: str = spec.name) -> None:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "learning_rate")
            echo(f"  {name} epoch {epoch}/{DEMO_EPOCHS}  {shown}")

        result = train_model(spec, portraits.faces, portraits.gender, targets, epochs=DEMO_EPOCHS, seed=seed + 112,
                             on_epoch=progress)
        echo(f"{spec.name} seed report:\n{result.report.format()}")
        results.append(result)
    return results


def register_demo_models(session: Session, home: Path, results: list[TrainingResult], *, seed: int
                         ) -> list[str]:
    """Store and activate each trained model as a DEMO version; their labels (``gender@3``), in chain order."""
    labels = []
    for result in results:
        metrics = {"demo": True, "trained_on": f"generated portraits, seed {seed}", **result.report.to_dict()}
        record = register_model(session, home, result.spec, result.model, metrics=metrics, is_demo=True)
        labels.append(record.label)
    return labels


def evaluate_demo_models(results: list[TrainingResult], *, n: int = 500, seed: int = EVALUATION_SEED_OFFSET
                         ) -> dict[str, float | bool]:
    """Judge the chain on held-out portraits: gender accuracy, each regressor's ratio and collapse flag.

    Regressors get the trained gender model's probabilities, exactly as in the service's chain.
    """
    held_out = generate_portraits(n, seed)
    chain = [LoadedModel(r.spec, 0, f"{r.spec.name}@demo", lambda model=r.model: model) for r in results]
    outputs = run_chain(chain, held_out.faces)
    metrics: dict[str, float | bool] = {
        "gender_accuracy": float(np.mean(outputs["gender"].argmax(axis=1) == held_out.gender))}
    for result in results[1:]:
        name = result.spec.name
        truth, predicted = held_out.labels(name), outputs[name]
        baseline = np.mean([np.mean((truth[held_out.gender == g] - np.mean(truth[held_out.gender == g])) ** 2)
                            for g in (0, 1)])
        metrics[f"{name}_ratio"] = float(baseline / np.mean((truth - predicted) ** 2))
        metrics[f"{name}_collapsed"] = is_collapsed(predicted[:15])
    return metrics

