"""What training records about its units, so inference cuts raw text the same way."""

from __future__ import annotations

from loraner.train.trainer import word_split_of
from loraner.types import Span, SpanExample, WordExample


def test_word_level_data_records_corpus_words():
    assert word_split_of([WordExample(tokens=["U.S.", "troops"], tags=["B-LOC", "O"], id="s1")]) == "conll"


def test_character_span_data_records_tokenizer_words():
    example = SpanExample(text="Kari Nordmann", spans=[Span(0, 13, "PATIENT")], id="n1")
    assert word_split_of([example]) == "tokenizer"
