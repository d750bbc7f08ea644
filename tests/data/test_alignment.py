"""Subword alignment from words and from character spans, and long-sequence windows."""

from __future__ import annotations

import itertools

import pytest
from transformers import AutoTokenizer

from loraner.data.alignment import (
    IGNORE,
    char_spans_to_token_tags,
    encode_span_example,
    encode_word_example,
    gold_token_tags,
    special_tokens,
    subword_tags,
    window_bounds,
    window_features,
    windows_for,
)
from loraner.errors import DataError
from loraner.types import Span, SpanExample, WordExample, iob2_labels

LABELS = iob2_labels(["LOC", "PER"])
L2I = {label: i for i, label in enumerate(LABELS)}


@pytest.fixture(scope="module")
def roberta(roberta_tokenizer_dir):
    return AutoTokenizer.from_pretrained(str(roberta_tokenizer_dir), add_prefix_space=True)


@pytest.fixture(scope="module")
def bert(minilm_dir):
    return AutoTokenizer.from_pretrained(str(minilm_dir))


@pytest.mark.parametrize(
    ("n_tokens", "body", "stride"),
    [
        (5, 10, 2),  # fits: one window
        (10, 10, 2),  # exactly fits
        (11, 10, 2),  # one token over
        (100, 10, 3),
        (1000, 126, 24),
        (37, 8, 0),  # no overlap
    ],
)
def test_when_windowing_then_owned_ranges_tile_the_doc_once(n_tokens, body, stride):
    bounds = window_bounds(n_tokens, body, stride)
    owned = [t for _, _, a, b in bounds for t in range(a, b)]
    assert owned == list(range(n_tokens))
    for start, end, own_start, own_end in bounds:
        assert 0 <= start <= own_start <= own_end <= end <= n_tokens
        assert end - start <= body
    assert bounds[-1][1] == n_tokens


def test_when_stride_exceeds_half_the_window_then_value_error_not_a_silent_clamp():
    with pytest.raises(ValueError, match=r"stride 6 must be in \[0, 5\]"):
        window_bounds(100, 10, 6)


def test_when_windows_overlap_then_consecutive_windows_share_stride_tokens():
    bounds = window_bounds(100, 10, 3)
    for (_, e1, *_), (s2, *_) in itertools.pairwise(bounds):
        assert e1 - s2 >= 3


def test_when_words_are_split_then_only_first_subword_is_labelled(roberta):
    ex = WordExample(["José", "Müller", "visited", "東京"], ["B-PER", "I-PER", "O", "B-LOC"], id="s1")
    doc = encode_word_example(ex, roberta, L2I)
    word_ids = roberta(ex.tokens, is_split_into_words=True, add_special_tokens=False).word_ids()
    firsts = [i for i, w in enumerate(word_ids) if i == 0 or w != word_ids[i - 1]]
    assert [LABELS[doc.token_labels[i]] for i in firsts] == ex.tags
    others = [doc.token_labels[i] for i in range(len(word_ids)) if i not in firsts]
    assert others and all(label == IGNORE for label in others)  # Müller and 東京 have >1 subword


def test_when_label_all_subwords_then_continuations_get_inside_tags(roberta):
    ex = WordExample(["東京"], ["B-LOC"])
    doc = encode_word_example(ex, roberta, L2I, label_all_subwords=True)
    assert [LABELS[i] for i in doc.token_labels] == ["B-LOC"] + ["I-LOC"] * (len(doc.input_ids) - 1)


def test_when_word_has_no_subwords_then_the_other_words_keep_their_labels(bert):
    ex = WordExample(["Oslo", "\u200b", "Bergen"], ["B-LOC", "O", "B-LOC"])
    doc = encode_word_example(ex, bert, L2I)
    assert [LABELS[i] for i in doc.token_labels if i != IGNORE] == ["B-LOC", "B-LOC"]


def test_subword_tags_label_first_subwords_and_skip_tokens_outside_words():
    assert subword_tags([None, 0, 0, 1, None], ["B-PER", "O"]) == [None, "B-PER", None, "O", None]
    assert subword_tags([0, 0], ["B-PER"], label_all_subwords=True) == ["B-PER", "I-PER"]


def test_when_gold_spans_meet_the_engines_words_then_first_subwords_carry_word_tags():
    # "Ann Lee went": tokens An|n Lee went (words 0, 0, 1, 2)
    offsets = [(0, 2), (2, 3), (4, 7), (8, 12)]
    word_ids = [0, 0, 1, 2]
    spans = [Span(0, 7, "PER")]
    assert gold_token_tags(offsets, word_ids, spans, word_level=True) == ["B-PER", None, "I-PER", "O"]
    assert gold_token_tags(offsets, word_ids, spans, word_level=False) == ["B-PER", "I-PER", "I-PER", "O"]


def test_when_unknown_label_then_error_names_example(roberta):
    with pytest.raises(DataError, match=r"s9: label 'B-ORG'"):
        encode_word_example(WordExample(["Acme"], ["B-ORG"], id="s9"), roberta, L2I)


@pytest.mark.parametrize("tokenizer_name", ["roberta", "bert"])
def test_when_char_spans_then_first_overlapping_token_is_b_and_rest_i(tokenizer_name, request):
    tokenizer = request.getfixturevalue(tokenizer_name)
    text = "Pasient Åse Bjørnstad 🙂 bor i 東京 nå."
    spans = [Span(8, 21, "PER"), Span(30, 32, "LOC")]
    assert text[8:21] == "Åse Bjørnstad" and text[30:32] == "東京"
    doc = encode_span_example(SpanExample(text, spans), tokenizer, L2I)
    tags = [LABELS[i] for i in doc.token_labels]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for label, span in (("PER", spans[0]), ("LOC", spans[1])):
        inside = [i for i, (s, e) in enumerate(offsets) if e > s and s < span.end and e > span.start]
        assert tags[inside[0]] == f"B-{label}"
        assert all(tags[i] == f"I-{label}" for i in inside[1:])
    outside = [t for t, (s, e) in zip(tags, offsets, strict=True) if e <= 8 or 21 <= s < 30 or s >= 32]
    assert set(outside) == {"O"}


def test_when_two_spans_touch_then_second_starts_with_b():
    offsets = [(0, 3), (4, 8), (8, 12)]
    tags = char_spans_to_token_tags(offsets, [Span(0, 8, "PER"), Span(8, 12, "PER")])
    assert tags == ["B-PER", "I-PER", "B-PER"]


def test_when_doc_exceeds_max_length_then_windows_cover_every_entity(roberta):
    words = ["word"] * 700 + ["Oslo"] + ["word"] * 50
    tags = ["O"] * 700 + ["B-LOC"] + ["O"] * 50
    doc = encode_word_example(WordExample(words, tags), roberta, L2I)
    specials = special_tokens(roberta)
    windows = windows_for([doc], max_length=64, stride=16, specials=specials)
    assert len(windows) > 10
    features = [window_features(doc, w, specials) for w in windows]
    assert all(len(f["input_ids"]) <= 64 for f in features)
    assert (
        features[0]["input_ids"][0] == roberta.cls_token_id
        and features[0]["input_ids"][-1] == roberta.sep_token_id
    )
    # Every labelled token is trained in some window; the entity after token 700 is among them.
    owned = [t for w in windows for t in range(w.own_start, w.own_end)]
    assert owned == list(range(len(doc.input_ids)))
    trained = {LABELS[label] for f in features for label in f["labels"] if label != IGNORE}
    assert trained == {"O", "B-LOC"}
