"""The one scoring rule (loraner.scores): exact start, end and full type; hand-checked numbers."""

from __future__ import annotations

import pytest

from loraner.scores import corpus_counts, entity_f1, f_beta, micro, span_counts
from loraner.types import Entity, Span


@pytest.mark.parametrize(
    ("p", "r", "beta", "expected"),
    [
        (1.0, 0.5, 1.0, 2 / 3),
        (1.0, 0.5, 2.0, 5 * 0.5 / (4 + 0.5)),
        (0.5, 1.0, 2.0, 5 * 0.5 / 3.0),
        (0, 0, 2, 0),  # nothing right: 0, not a division error
    ],
)
def test_when_f_beta_is_computed_then_it_matches_formula(p, r, beta, expected):
    assert f_beta(p, r, beta) == pytest.approx(expected)


def test_when_spans_differ_in_end_or_type_then_they_do_not_match():
    gold = [Span(0, 4, "PER"), Span(10, 14, "LOC"), Span(20, 25, "person-other")]
    pred = [
        Entity("PER", "Kari", 0, 4),  # right
        Entity("LOC", "Oslo.", 10, 15),  # one character too long
        Entity("art-other", "Mozar", 20, 25),  # same span, another full type
    ]
    counts = span_counts(gold, pred)
    assert (counts["PER"].tp, counts["PER"].fp, counts["PER"].fn) == (1, 0, 0)
    assert (counts["LOC"].tp, counts["LOC"].fp, counts["LOC"].fn) == (0, 1, 1)
    assert (counts["person-other"].fn, counts["art-other"].fp) == (1, 1)


def test_when_a_gold_span_is_predicted_twice_then_one_counts_and_one_is_spurious():
    counts = span_counts([Span(0, 4, "PER")], [Span(0, 4, "PER"), Span(0, 4, "PER")])["PER"]
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 0)


def test_when_documents_are_summed_then_offsets_never_match_across_documents():
    total = micro(corpus_counts([[Span(0, 4, "PER")], []], [[], [Span(0, 4, "PER")]]))
    assert (total.tp, total.fp, total.fn) == (0, 1, 1)
    # P = 1/2, R = 1/3 -> F1 = 0.4
    three_two = micro(
        corpus_counts(
            [[Span(0, 2, "PER"), Span(3, 4, "LOC"), Span(5, 6, "ORG")]],
            [[Span(0, 2, "PER"), Span(5, 6, "LOC")]],
        )
    )
    assert (three_two.precision, three_two.recall, three_two.f()) == pytest.approx((0.5, 1 / 3, 0.4))


def test_entity_f1_is_one_when_neither_side_has_an_entity():
    assert entity_f1([[], []], [[], []]) == 1.0
    assert entity_f1([[Span(0, 1, "X")]], [[]]) == 0.0
    with pytest.raises(ValueError, match="2 gold documents but 1"):
        corpus_counts([[], []], [[]])
