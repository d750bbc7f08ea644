"""The generalization check (``make demo``, ``make bench``): the Nor-DeID holdout notes scored under both
name conventions, with a detector whose answers are known and a stand-in ``../shared`` folder."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from loraner.data import load_splits
from loraner.eval.generalization import (
    generalization_rows,
    nor_deid_available,
    nor_deid_config,
    score_generalization,
)
from loraner.types import Entity, SpanExample

pytestmark = pytest.mark.filterwarnings("ignore:.*nested/overlapping spans dropped:UserWarning")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "nordeid"


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``../shared`` whose Nor-DeID holdout file holds the three invented fixture training notes."""
    folder = tmp_path / "data" / "nor-deid-synth"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "training.json", folder / "holdout.json")
    monkeypatch.setenv("LORANER_SHARED", str(tmp_path))
    return tmp_path


class FullNameDetector:
    """A perfect detector that writes names the generator's way: first and last name as one span."""

    def __init__(self) -> None:
        cfg = nor_deid_config()
        data = cfg.data.model_copy(update={"join_spans": ["PATIENT"], "splits": {"test": "holdout.json"}})
        self.gold = {
            ex.text: [Entity(s.label, ex.text[s.start : s.end], s.start, s.end) for s in ex.spans]
            for ex in load_splits(data)["test"]
            if isinstance(ex, SpanExample)
        }
        self.calls = 0

    def __call__(self, texts: Sequence[str]) -> list[list[Entity]]:
        self.calls += 1
        return [self.gold[t] for t in texts]


def test_when_shared_folder_absent_then_not_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORANER_SHARED", str(tmp_path))
    assert not nor_deid_available()


def test_when_full_names_predicted_then_parts_convention_loses_f1_but_not_char_recall(shared: Path) -> None:
    assert nor_deid_available()
    detector = FullNameDetector()
    scores = score_generalization(Path("unused"), predict_batch=detector)
    assert detector.calls == 1  # both conventions score the same predictions
    full = scores["full_names"]["without_recognizers"]
    parts = scores["parts"]["without_recognizers"]
    assert full["documents"] == parts["documents"] == 3
    assert full["entity"]["micro"]["f1"] == 1.0 and full["char_recall"] == 1.0 and full["leak_count"] == 0
    # Nor-DeID's own convention: the one-span names are wrong as entities, yet every PHI character is removed.
    assert parts["entity"]["per_type"]["PATIENT"]["f1"] < 0.7
    assert parts["entity"]["per_type"]["ID"]["f1"] == 1.0
    assert parts["char_recall"] == 1.0 and parts["leak_count"] == 0
    assert set(scores["parts"]) == {"without_recognizers", "with_recognizers"}


def test_when_rows_rendered_then_in_distribution_first_then_each_convention(shared: Path) -> None:
    scores = score_generalization(Path("unused"), predict_batch=FullNameDetector(), recognizers=False)
    rows = generalization_rows({"precision": 0.98, "recall": 0.99, "f1": 0.985}, scores)
    assert rows[0][:6] == ("synthetic test split", "generator", "without", "0.980", "0.990", "0.985")
    assert [(r[1], r[2]) for r in rows[1:]] == [("parts", "without"), ("full_names", "without")]
    assert rows[2][5:] == ("1.000", "1.000", "0")
