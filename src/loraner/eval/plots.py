"""PNG figures: training curves and the type-confusion heatmap.

Figures are built with ``matplotlib.figure.Figure`` on an Agg canvas instead of ``pyplot`` so nothing
touches global GUI state: safe on headless servers and from worker threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from loraner.eval.confusion import TypeConfusion

if TYPE_CHECKING:
    from matplotlib.axes import Axes

LOSS_SERIES = (("train_loss", "train loss"), ("eval_loss", "validation loss"))
SCORE_SERIES = (("precision", "precision"), ("recall", "recall"), ("f1", "F1"))


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
    return path


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def series(epochs: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(x, y) points for ``key``, skipping epochs where it is missing, None or NaN.

    An epoch without an ``epoch`` number is placed at its 1-based position in the list.
    """
    xs: list[float] = []
    ys: list[float] = []
    for i, entry in enumerate(epochs, start=1):
        value = entry.get(key)
        if not _is_number(value):
            continue
        x = entry.get("epoch")
        xs.append(float(x) if _is_number(x) else float(i))
        ys.append(float(value))
    return xs, ys


def _draw_series(ax: Axes, epochs: Sequence[dict[str, Any]], keys: Sequence[tuple[str, str]]) -> bool:
    drawn = False
    for key, label in keys:
        xs, ys = series(epochs, key)
        if xs:
            # Markers keep single-epoch runs visible (a one-point line draws nothing).
            ax.plot(xs, ys, marker="o", label=label)
            drawn = True
    if drawn:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xlabel("epoch")
    # Whole-number epochs should not get 1.25, 1.5, ... ticks.
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    return drawn


def plot_curves(epochs: list[dict[str, Any]], path: str | Path) -> Path:
    """Two panels in one PNG: train/validation loss vs epoch, and validation P/R/F1 vs epoch."""
    fig = _new_figure(11, 4.2)
    loss_ax, score_ax = fig.subplots(1, 2)
    _draw_series(loss_ax, epochs, LOSS_SERIES)
    loss_ax.set_title("Loss")
    loss_ax.set_ylabel("loss")
    if _draw_series(score_ax, epochs, SCORE_SERIES):
        score_ax.set_ylim(0.0, 1.02)
    score_ax.set_title("Validation entity scores")
    score_ax.set_ylabel("score")
    return _save(fig, path)


def _confusion_size(n: int) -> tuple[float, float]:
    # ~0.4 inch per row/column keeps 66 types legible (≈29 in) while small matrices stay compact.
    side = max(5.0, 0.4 * n + 2.5)
    return side + 1.5, side


def _cell_colours(matrix: list[list[int]]) -> list[list[float]]:
    # Colour by share of the row so rare types are as readable as frequent ones; numbers stay raw.
    return [[v / s if (s := sum(row)) else 0.0 for v in row] for row in matrix]


def _annotate(ax: Axes, matrix: list[list[int]], shares: list[list[float]], fontsize: float) -> None:
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value:  # blank zeros: with dozens of types a sea of "0" hides the signal
                colour = "white" if shares[i][j] > 0.6 else "black"
                ax.text(j, i, str(value), ha="center", va="center", fontsize=fontsize, color=colour)


def plot_confusion(confusion: TypeConfusion, path: str | Path, title: str) -> Path:
    """Heatmap of gold (rows) vs predicted (columns) types, counts written in non-zero cells."""
    rows, cols = confusion.row_labels, confusion.col_labels
    n = max(len(rows), len(cols))
    fig = _new_figure(*_confusion_size(n))
    ax = fig.add_subplot(1, 1, 1)
    shares = _cell_colours(confusion.matrix)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of row")
    fontsize = 9.0 if n <= 20 else max(6.0, 9.0 - (n - 20) / 12)
    _annotate(ax, confusion.matrix, shares, fontsize)
    ax.set_xticks(range(len(cols)), labels=cols, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(len(rows)), labels=rows, fontsize=fontsize)
    ax.set_xlabel("predicted type")
    ax.set_ylabel("gold type")
    ax.set_title(title)
    return _save(fig, path)
