"""The report's charts, drawn with matplotlib (no pyplot: no global state, no display) as inline PNG data URIs.

Static PNGs need no script in the page, so the report opens in any browser, offline, with nothing to load;
every chart is drawn from arrays already reduced (histogram counts, bins, a sample of points).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from annotator.faces.quality import BLURRY_BELOW, BRIGHT_ABOVE, DARK_BELOW
from annotator.inspection.report.figures import GenderAgreement

DPI = 80
MALE, FEMALE, NEUTRAL = "#4c78a8", "#e45756", "#72b7b2"
HISTOGRAM_BINS = 20


def data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height))


def _bars(axes, values: np.ndarray, edges: np.ndarray, **style) -> None:  # type: ignore[no-untyped-def]
    """A histogram counted by NumPy and drawn as one filled outline (fast whatever the number of values)."""
    axes.stairs(np.histogram(values, bins=edges)[0], edges, fill=True, **style)


def reasons_chart(labels: Sequence[str], counts: Sequence[int]) -> str:
    """Horizontal bars: images per status and reason code."""
    figure = _figure(6.5, 0.5 + 0.32 * max(len(labels), 1))
    axes = figure.add_subplot()
    positions = np.arange(len(labels))
    colours = [FEMALE if label.startswith("failed") else NEUTRAL for label in labels]
    axes.barh(positions, counts, color=colours)
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()
    axes.set_xlabel("images")
    for position, count in zip(positions, counts):
        axes.annotate(f"{count:,}", (count, position), xytext=(3, 0), textcoords="offset points", va="center",
                      fontsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    return data_uri(figure)


def distribution_chart(name: str, values: np.ndarray, female: np.ndarray) -> str:
    """Histogram of one attribute's values in 0..1, male and female predictions side by side."""
    figure = _figure(4.6, 2.6)
    axes = figure.add_subplot()
    known = ~np.isnan(values)
    is_female = female[known] >= 0.5
    kept = values[known]
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    male_label, female_label = ("predicted male", "predicted female") if name == "gender" else (
        f"male ({np.sum(~is_female):,})", f"female ({np.sum(is_female):,})")
    _bars(axes, kept[~is_female], edges, color=MALE, alpha=0.75, label=male_label)
    _bars(axes, kept[is_female], edges, color=FEMALE, alpha=0.6, label=female_label)
    axes.set_xlabel("female probability" if name == "gender" else name)
    axes.set_ylabel("faces")
    axes.set_xlim(0, 1)
    axes.legend(fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return data_uri(figure)


def reliability_chart(agreement: GenderAgreement) -> str:
    """Predicted female probability against the share labelled female, per bin (the diagonal is perfect)."""
    figure = _figure(4.0, 3.4)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="perfectly calibrated")
    if agreement.bins:
        predicted = [b[1] for b in agreement.bins]
        observed = [b[2] for b in agreement.bins]
        sizes = np.array([b[3] for b in agreement.bins], np.float64)
        axes.plot(predicted, observed, color=FEMALE, linewidth=1)
        axes.scatter(predicted, observed, s=20 + 200 * sizes / sizes.max(), color=FEMALE, zorder=3,
                     label="labelled faces per bin (size)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("predicted female probability (bin mean)")
    axes.set_ylabel("labelled female (share)")
    axes.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    return data_uri(figure)


def label_scatter_chart(pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Prediction against label per regressor (labels jittered a little so equal ones stay visible)."""
    figure = _figure(2.6 * max(len(pairs), 1), 2.6)
    rng = np.random.default_rng(0)
    for position, (name, (predicted, label)) in enumerate(pairs.items(), start=1):
        axes = figure.add_subplot(1, max(len(pairs), 1), position)
        axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1)
        axes.scatter(label + rng.uniform(-0.02, 0.02, len(label)), predicted, s=6, alpha=0.5, color=MALE)
        axes.set_xlim(-0.05, 1.05)
        axes.set_ylim(-0.05, 1.05)
        axes.set_title(name, fontsize=9)
        axes.set_xlabel("label", fontsize=8)
        if position == 1:
            axes.set_ylabel("prediction", fontsize=8)
    return data_uri(figure)


def quality_chart(brightness: np.ndarray, sharpness: np.ndarray) -> str:
    """Histograms of brightness and sharpness with the flag thresholds marked."""
    figure = _figure(8.0, 2.6)
    left, right = figure.subplots(1, 2)
    bright = brightness[~np.isnan(brightness)]
    _bars(left, bright, np.linspace(0, 1, 41), color=NEUTRAL)
    for threshold in (DARK_BELOW, BRIGHT_ABOVE):
        left.axvline(threshold, color=FEMALE, linestyle="--", linewidth=1)
    left.set_xlabel("brightness (mean grey of the face)")
    left.set_ylabel("faces")
    sharp = np.log10(np.clip(sharpness[~np.isnan(sharpness)], 1.0, None))  # a log axis costs seconds to draw
    _bars(right, sharp, np.linspace(0, 4.5, 46), color=NEUTRAL)
    right.axvline(np.log10(BLURRY_BELOW), color=FEMALE, linestyle="--", linewidth=1)
    right.set_xticks(range(5), ["1", "10", "100", "1000", "10⁴"])
    right.set_xlabel("sharpness (variance of the Laplacian, log scale)")
    for axes in (left, right):
        axes.spines[["top", "right"]].set_visible(False)
    return data_uri(figure)
