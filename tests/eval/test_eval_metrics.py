"""Entity scores on hand-checked cases (expected numbers worked out in the comments).

Cases are written as IOB2 tag sequences over one-character words and turned into character spans, the
form the inference engine returns: a span matches only with the same start, end and full type.
"""

from __future__ import annotations

import json

import pytest

from loraner.data.examples import as_span_example
from loraner.eval.metrics import entity_metrics
from loraner.types import WordExample


def spans(sequences: list[list[str]]):
    return [as_span_example(WordExample(["w"] * len(tags), tags)).spans for tags in sequences]


def entity_scores(gold: list[list[str]], pred: list[list[str]]):
    return entity_metrics(spans(gold), spans(pred))


CASES = [
    pytest.param(
        # gold entities: PER[0:2], LOC[3:4], ORG[5:6]  -> 3
        # pred entities: PER[0:2], LOC[5:6]             -> 2, only PER is correct -> tp 1
        # P = 1/2 = 0.5, R = 1/3, F1 = 2*0.5*(1/3)/(0.5+1/3) = 0.4
        # tokens right: 0,1,2,4 of 6 -> accuracy 4/6
        [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]],
        [["B-PER", "I-PER", "O", "O", "O", "B-LOC"]],
        (0.5, 1 / 3, 0.4),
        id="three-gold-two-pred-one-correct",
    ),
    pytest.param(
        # Same span, different full type: person-other != art-other, so 0 tp out of 1 pred / 1 gold.
        [["B-person-other", "I-person-other", "O"]],
        [["B-art-other", "I-art-other", "O"]],
        (0.0, 0.0, 0.0),
        id="person-other-vs-art-other",
    ),
    pytest.param(
        # Pred PER[0:2] vs gold PER[0:3]: right type, wrong end -> wrong. accuracy 2/3.
        [["B-PER", "I-PER", "I-PER"]],
        [["B-PER", "I-PER", "O"]],
        (0.0, 0.0, 0.0),
        id="partial-boundary-is-wrong",
    ),
    pytest.param(
        # Two sentences, 2 gold, 2 pred, both right.
        [["B-PER", "O"], ["O", "B-LOC", "I-LOC"]],
        [["B-PER", "O"], ["O", "B-LOC", "I-LOC"]],
        (1.0, 1.0, 1.0),
        id="perfect",
    ),
    pytest.param(
        # gold PER[0:1]; pred PER[0:1] + spurious LOC[2:3] -> P = 1/2, R = 1/1, F1 = 2/3; acc 2/3.
        [["B-PER", "O", "O"]],
        [["B-PER", "O", "B-LOC"]],
        (0.5, 1.0, 2 / 3),
        id="one-spurious",
    ),
]


@pytest.mark.parametrize(("gold", "pred", "expected"), CASES)
def test_when_hand_checked_case_then_micro_scores_match(gold, pred, expected):
    scores = entity_scores(gold, pred)
    got = (scores["precision"], scores["recall"], scores["f1"])
    assert got == pytest.approx(expected)


def test_when_three_types_then_per_type_scores_and_support_are_per_type():
    # PER: gold 1, pred 1 (same span) -> 1/1/1. LOC: gold at 3, pred at 5 -> 0/0/0, support 1.
    # ORG: gold 1, no pred -> P 0 (zero division), R 0, support 1.
    scores = entity_scores(
        [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]],
        [["B-PER", "I-PER", "O", "O", "O", "B-LOC"]],
    )
    assert scores["per_type"] == {
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "ORG": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
    }


def test_when_types_share_a_suffix_then_per_type_keeps_full_names():
    # The naive bug would merge these into one "other" type scoring 1.0.
    scores = entity_scores([["B-person-other", "O"]], [["B-art-other", "O"]])
    assert set(scores["per_type"]) == {"person-other", "art-other"}
    assert scores["per_type"]["person-other"]["support"] == 1
    assert scores["per_type"]["art-other"]["support"] == 0
    assert scores["f1"] == 0.0


def test_when_per_type_mixes_hits_and_misses_then_numbers_are_per_type():
    # gold PER: s1[0:1], s2[0:2]; pred PER: s1[0:1], s2[0:1] (wrong end), s2[2:3] (spurious).
    # PER: gold 2, pred 3, tp 1 -> P 1/3, R 1/2, F1 = 2*(1/6)/(5/6) = 0.4.
    # LOC: gold 1, pred 1, tp 1 -> 1/1/1.
    # micro: tp 2, pred 4, gold 3 -> P 1/2, R 2/3, F1 = 2*(1/3)/(7/6) = 4/7.
    gold = [["B-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O"]]
    pred = [["B-PER", "O", "B-LOC"], ["B-PER", "O", "B-PER"]]
    scores = entity_scores(gold, pred)
    assert scores["per_type"]["PER"] == pytest.approx(
        {"precision": 1 / 3, "recall": 0.5, "f1": 0.4, "support": 2}
    )
    assert scores["per_type"]["LOC"] == pytest.approx(
        {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    )
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx((0.5, 2 / 3, 4 / 7))


@pytest.mark.parametrize(
    ("gold", "pred"),
    [
        pytest.param([], [], id="no-documents"),
        pytest.param([[], []], [[], []], id="empty-documents"),
        pytest.param([["O", "O"]], [["O", "O"]], id="all-O"),
    ],
)
def test_when_no_entities_then_scores_are_zero_not_a_crash(gold, pred):
    scores = entity_scores(gold, pred)
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.0, 0.0, 0.0)
    assert scores["per_type"] == {}


def test_when_scored_then_result_is_plain_json_serialisable_python():
    scores = entity_scores([["B-PER", "O"]], [["B-PER", "B-LOC"]])
    json.dumps(scores)
    assert all(type(scores[k]) is float for k in ("precision", "recall", "f1"))
    row = scores["per_type"]["PER"]
    assert type(row["support"]) is int and type(row["f1"]) is float


def test_when_document_counts_differ_then_value_error():
    with pytest.raises(ValueError, match="1 gold documents but 0"):
        entity_metrics([[]], [])
