"""De-identification metrics, checked by hand."""

from __future__ import annotations

import pytest

from loraner.deid import DeidEvaluator, deidentify, evaluate_document, validate_deid_config
from loraner.types import Span

TEXT = "Kari Nordmann bor i Oslo, tlf 91234567."
GOLD = [Span(0, 13, "PATIENT"), Span(20, 24, "LOC"), Span(30, 38, "PHONE")]  # 12 + 4 + 8 PHI chars


def run(pred: list[Span], per_type: dict | None = None):
    cfg = validate_deid_config({"per_type": per_type or {}})
    return deidentify(TEXT, pred, cfg)


def test_when_detection_is_partial_then_char_recall_counts_protected_chars():
    pred = [Span(0, 4, "PATIENT"), Span(20, 24, "LOC"), Span(30, 38, "PHONE")]
    result = run(pred, {"PHONE": {"operator": "mask", "keep_last": 2}})
    s = evaluate_document(TEXT, GOLD, pred, result)
    # "Kari" 4/12 (the space does not count), "Oslo" 4/4, phone 6/8 (two digits left visible by the mask).
    assert s["phi_chars"] == 24
    assert s["protected_chars"] == 14
    assert s["char_recall"] == pytest.approx(14 / 24)
    assert s["char_recall_per_type"] == pytest.approx({"LOC": 1.0, "PATIENT": 4 / 12, "PHONE": 6 / 8})
    micro = s["entity"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (2, 1, 1)
    assert micro["precision"] == pytest.approx(2 / 3)
    assert micro["recall"] == pytest.approx(2 / 3)
    assert micro["f1"] == pytest.approx(2 / 3)
    assert micro["f2"] == pytest.approx(2 / 3)
    patient = s["entity"]["per_type"]["PATIENT"]
    assert (patient["tp"], patient["fp"], patient["fn"], patient["f1"]) == (0, 1, 1, 0.0)
    assert s["leaks"] == [
        {
            "type": "PATIENT",
            "text": "Kari Nordmann",
            "start": 0,
            "end": 13,
            "intact_chars": 8,
            "fully": False,
        },
        {"type": "PHONE", "text": "91234567", "start": 30, "end": 38, "intact_chars": 2, "fully": False},
    ]


def test_when_type_is_wrong_then_chars_still_count_as_protected():
    pred = [Span(0, 13, "LOC"), Span(20, 24, "PATIENT"), Span(30, 38, "PHONE")]
    s = evaluate_document(TEXT, GOLD, pred, run(pred))
    assert s["char_recall"] == 1.0
    assert s["leak_count"] == 0
    assert s["entity"]["micro"]["tp"] == 1


def test_when_operator_is_keep_then_nothing_is_protected():
    pred = list(GOLD)
    s = evaluate_document(TEXT, GOLD, pred, run(pred, {"LOC": "keep"}))
    assert s["char_recall_per_type"]["LOC"] == 0.0
    assert s["char_recall"] == pytest.approx(20 / 24)
    assert [(leak["text"], leak["fully"]) for leak in s["leaks"]] == [("Oslo", True)]


def test_when_nothing_is_predicted_then_everything_leaks():
    s = evaluate_document(TEXT, GOLD, [], run([]))
    assert s["char_recall"] == 0.0
    assert s["entity"]["micro"]["recall"] == 0.0
    assert all(leak["fully"] for leak in s["leaks"])


def test_when_documents_accumulate_then_summary_sums_counts():
    ev = DeidEvaluator()
    full = list(GOLD)
    ev.add(TEXT, GOLD, full, run(full))
    ev.add(TEXT, GOLD, [], run([]))
    ev.add("ingen PHI her", [], [], deidentify("ingen PHI her", [], validate_deid_config({})))
    s = ev.summary(include_leaks=False)
    assert s["documents"] == 3
    assert s["phi_chars"] == 48 and s["protected_chars"] == 24
    assert s["char_recall"] == 0.5
    assert s["entity"]["micro"]["recall"] == 0.5 and s["entity"]["micro"]["precision"] == 1.0
    assert s["leak_count"] == 3
    assert "leaks" not in s


def test_when_no_phi_at_all_then_recall_is_one():
    s = DeidEvaluator().summary()
    assert s["char_recall"] == 1.0
    assert s["entity"]["micro"]["f1"] == 0.0
