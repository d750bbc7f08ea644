"""Fixtures for the command tests: a gazetteer predictor patched in for NERPredictor.from_pretrained,
a tiny random model with the Nor-DeID labels, and an experiment preset over the Nor-DeID fixture."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from loraner.types import Entity, iob2_labels

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NORDEID_TYPES = ["AGE", "DATE", "ID", "LOC", "PATIENT", "PHONE"]
GAZETTEER = {"Kari Nordmann": "PATIENT", "Bergen": "LOC", "Ola Hansen": "PATIENT", "45 år": "AGE"}


class GazetteerPredictor:
    """Finds ``GAZETTEER`` names; remembers how it was loaded and what it was asked."""

    def __init__(self, **loaded_with: Any) -> None:
        self.loaded_with = loaded_with
        self.batches: list[list[str]] = []
        self.o_thresholds: list[float | None] = []  # the cut-off each call was given

    def predict_batch(self, texts: Sequence[str], *, o_threshold: float | None = None) -> list[list[Entity]]:
        self.batches.append(list(texts))
        self.o_thresholds.append(o_threshold)
        return [self.find(t) for t in texts]

    @staticmethod
    def find(text: str) -> list[Entity]:
        found = []
        for name, kind in GAZETTEER.items():
            at = text.find(name)
            while at >= 0:
                found.append(Entity(kind, name, at, at + len(name), 0.9))
                at = text.find(name, at + len(name))
        return sorted(found, key=lambda e: e.start)


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> list[GazetteerPredictor]:
    """Every ``NERPredictor.from_pretrained`` call returns a new gazetteer predictor, appended here."""
    from loraner.inference import NERPredictor

    loaded: list[GazetteerPredictor] = []

    def from_pretrained(path: Any, backend: str = "auto", *args: Any, **kwargs: Any) -> GazetteerPredictor:
        loaded.append(GazetteerPredictor(path=path, backend=backend, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(NERPredictor, "from_pretrained", from_pretrained)
    return loaded


@pytest.fixture(scope="session")
def nordeid_model(tiny_roberta_factory: Callable[[list[str]], Path]) -> Path:
    """A tiny random model with the Nor-DeID labels: real loading and decoding, meaningless scores."""
    return tiny_roberta_factory(iob2_labels(NORDEID_TYPES))


@pytest.fixture
def nordeid_preset(tmp_path: Path) -> Path:
    """A preset over the checked-in Nor-DeID fixture (holdout = 1 note, training = 3 notes)."""
    path = tmp_path / "nordeid.yaml"
    path.write_text(
        "name: tiny-nordeid\n"
        f"data: {{format: nor-deid, path: {FIXTURES / 'data' / 'nordeid'}, view: notes}}\n"
        "model: {name_or_path: roberta-base, max_length: 64, stride: 8}\n",
        encoding="utf-8",
    )
    return path
