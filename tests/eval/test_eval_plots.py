"""Training curves: a valid PNG whatever is missing from the epoch log."""

from __future__ import annotations

import math

import pytest

from loraner.eval.plots import plot_curves, series

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

FULL = [
    {"epoch": 1, "train_loss": 0.9, "eval_loss": 0.6, "precision": 0.5, "recall": 0.4, "f1": 0.44},
    {"epoch": 2, "train_loss": 0.4, "eval_loss": 0.3, "precision": 0.8, "recall": 0.7, "f1": 0.75},
]


@pytest.mark.parametrize(
    "epochs",
    [
        pytest.param(FULL, id="full"),
        pytest.param(
            [{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "eval_loss": None, "f1": 0.5}], id="gaps"
        ),
        pytest.param([{"epoch": 1.0, "f1": math.nan}], id="nan-only"),
        pytest.param([{"train_loss": 0.5}], id="no-epoch-number"),
        pytest.param([], id="empty"),
    ],
)
def test_when_plotting_curves_then_a_png_is_written(tmp_path, epochs):
    path = plot_curves(epochs, tmp_path / "sub" / "curves.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("train_loss", ([1.0, 2.0, 3.0], [0.9, 0.5, 0.2])),
        ("eval_loss", ([1.0], [0.6])),  # None and NaN dropped
        ("f1", ([], [])),
    ],
)
def test_when_values_are_missing_then_series_skips_them_and_uses_position_for_missing_epoch(key, expected):
    epochs = [
        {"epoch": 1, "train_loss": 0.9, "eval_loss": 0.6},
        {"epoch": 2, "train_loss": 0.5, "eval_loss": None},
        {"train_loss": 0.2, "eval_loss": math.nan},  # no epoch number: third entry -> x = 3
    ]
    assert series(epochs, key) == expected
