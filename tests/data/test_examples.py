"""Every example as text with character spans, and what each data format labels (words or spans)."""

from __future__ import annotations

import pytest

from loraner.data import as_span_example, reader_unit, supported_formats
from loraner.errors import ConfigError, DataError
from loraner.types import Span, SpanExample, WordExample


def test_when_words_are_joined_then_each_entity_covers_exactly_its_words():
    example = WordExample(
        ["Åse", "Bjørnstad", "flew", "to", "São", "Paulo", "with", "NRK", "."],
        ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O", "B-ORG", "O"],
        id="s1",
    )
    spans = as_span_example(example)
    assert spans.text == "Åse Bjørnstad flew to São Paulo with NRK ."
    assert [(spans.text[s.start : s.end], s.label) for s in spans.spans] == [
        ("Åse Bjørnstad", "PER"),
        ("São Paulo", "LOC"),
        ("NRK", "ORG"),
    ]
    assert spans.id == "s1"


def test_when_two_entities_of_a_type_touch_then_they_stay_two():
    spans = as_span_example(WordExample(["Oslo", "Bergen"], ["B-LOC", "B-LOC"])).spans
    assert spans == [Span(0, 4, "LOC"), Span(5, 11, "LOC")]


def test_when_the_example_has_spans_already_then_it_is_returned_as_is():
    example = SpanExample("Kari i Oslo", [Span(7, 11, "LOC")])
    assert as_span_example(example) is example


def test_when_a_tag_is_unknown_then_the_error_names_the_example():
    with pytest.raises(DataError, match="s9: invalid tag 'X-LOC'"):
        as_span_example(WordExample(["Oslo"], ["X-LOC"], id="s9"))


def test_every_format_says_what_it_labels():
    units = {name: reader_unit(name) for name in supported_formats()}
    assert units["conll"] == units["fewnerd-txt"] == units["fewnerd-hub"] == units["hf"] == "words"
    assert units["jsonl"] == units["synth"] == units["nor-deid"] == units["label-studio"] == "spans"
    assert set(units.values()) == {"words", "spans"}
    with pytest.raises(ConfigError, match="unknown format 'csv'"):
        reader_unit("csv")
