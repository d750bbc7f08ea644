"""NERPredictor with real tokenizers and chosen logits: offsets, scripts, windows, label sets, batching."""

from __future__ import annotations

import pytest
from inference_helpers import IO, label_words, word_ids_of

from loraner.errors import ConfigError


def spans(entities):
    return [(e.text, e.type) for e in entities]


def assert_offsets_slice(text, entities):
    for e in entities:
        assert e.text == text[e.start : e.end], e
        assert 0 <= e.start < e.end <= len(text)


@pytest.mark.parametrize(
    ("text", "words", "expected"),
    [
        # ASCII
        (
            "John Smith lives in Paris.",
            {"John": "B-PER", "Smith": "I-PER", "Paris": "B-LOC"},
            [("John Smith", "PER"), ("Paris", "LOC")],
        ),
        # accents: the reference predictor returned "JosÃ© MÃ¼ller" here
        (
            "Dr. José Müller flew to São Paulo",
            {"José": "B-PER", "Müller": "I-PER", "São": "B-LOC", "Paulo": "I-LOC"},
            [("José Müller", "PER"), ("São Paulo", "LOC")],
        ),
        # emoji before the entity: offsets are code points, not bytes or UTF-16 units
        (
            "😀🎉 Zoë Ødegård 👍 met Ann",
            {"Zoë": "B-PER", "Ødegård": "I-PER", "Ann": "B-PER"},
            [("Zoë Ødegård", "PER"), ("Ann", "PER")],
        ),
        # CJK: several byte-level tokens share one character's offsets
        (
            "We visit 東京 and 北京 soon",
            {"東京": "B-LOC", "北京": "B-LOC"},
            [("東京", "LOC"), ("北京", "LOC")],
        ),
    ],
)
@pytest.mark.parametrize("word_split", ["tokenizer", "conll"])
def test_when_text_has_any_script_then_text_equals_original_slice(
    make_predictor, roberta_tok, text, words, expected, word_split
):
    predictor = make_predictor(label_words(roberta_tok, words), word_split=word_split)
    entities = predictor.predict(text)
    assert_offsets_slice(text, entities)
    assert spans(entities) == expected


def test_when_later_subwords_disagree_then_first_subword_decides(make_predictor, roberta_tok):
    # "Lindqvist" is several subwords (ĠL + in + ...); the later ones are labelled B-LOC (noise) and
    # must not split the name.
    assert len(word_ids_of(roberta_tok, "Lindqvist")) > 1
    predictor = make_predictor(
        label_words(roberta_tok, {"José": "B-PER", "Lindqvist": "I-PER"}, rest="B-LOC")
    )
    assert spans(predictor.predict("José Lindqvist")) == [("José Lindqvist", "PER")]


@pytest.mark.parametrize(
    ("word_split", "expected"),
    [
        # Corpus words, as the model was trained: "U.S." and "Germany-based" carry one label each.
        ("conll", [("U.S.", "LOC"), ("Germany-based", "MISC"), ("Reuters", "ORG")]),
        # The tokenizer's words: the untrained "." and "-based" subwords become words of their own.
        ("tokenizer", [("U", "LOC"), (".", "PER"), ("S", "PER"), (".", "PER"), ("Germany", "MISC")]),
    ],
)
def test_when_word_split_conll_then_corpus_words_are_single_units(
    make_predictor, bert_tok, word_split, expected
):
    labels = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    by_id = label_words(
        bert_tok, {"U.S.": "B-LOC", "Germany-based": "B-MISC", "Reuters": "B-ORG"}, rest="B-PER"
    )
    text = "The U.S. and a Germany-based group (Reuters) said"
    entities = make_predictor(by_id, labels=labels, tokenizer=bert_tok, word_split=word_split).predict(text)
    assert_offsets_slice(text, entities)
    if word_split == "conll":
        assert spans(entities) == expected
    else:
        assert spans(entities)[:5] == expected


@pytest.mark.parametrize("word_split", ["tokenizer", "conll"])
def test_when_uncased_bert_then_text_keeps_original_accents(make_predictor, bert_tok, word_split):
    text = "José Müller bor i Tromsø."
    by_id = label_words(bert_tok, {"José": "B-PER", "Müller": "I-PER", "Tromsø": "B-LOC"})
    entities = make_predictor(by_id, tokenizer=bert_tok, word_split=word_split).predict(text)
    assert spans(entities) == [("José Müller", "PER"), ("Tromsø", "LOC")]  # not "jose muller"
    assert_offsets_slice(text, entities)


def test_when_io_labels_then_same_type_neighbours_merge_and_types_split(make_predictor, roberta_tok):
    by_id = label_words(roberta_tok, {"Ann": "PER", "Lee": "PER", "Oslo": "LOC"})
    predictor = make_predictor(by_id, labels=IO)
    # Known IO limit: two adjacent PER names would merge too; nothing in IO labels marks the boundary.
    assert spans(predictor.predict("Ann Lee Oslo")) == [("Ann Lee", "PER"), ("Oslo", "LOC")]


def test_when_iob2_begin_then_adjacent_same_type_entities_split(make_predictor, roberta_tok):
    by_id = label_words(roberta_tok, {"Ann": "B-PER", "Lee": "B-PER"})
    assert spans(make_predictor(by_id).predict("Ann Lee")) == [("Ann", "PER"), ("Lee", "PER")]


@pytest.mark.parametrize(("max_length", "stride"), [(512, 64), (64, 16), (16, 4)])
def test_when_entity_after_token_600_then_found_once(make_predictor, roberta_tok, max_length, stride):
    filler = "lorem " * 650
    text = filler + "José Müller moved to Oslo."
    assert len(roberta_tok(text, add_special_tokens=False)["input_ids"]) > 600
    predictor = make_predictor(
        label_words(roberta_tok, {"José": "B-PER", "Müller": "I-PER", "Oslo": "B-LOC"}),
        max_length=max_length,
        stride=stride,
    )
    entities = predictor.predict(text)
    assert spans(entities) == [("José Müller", "PER"), ("Oslo", "LOC")]
    assert entities[0].start == len(filler)
    assert_offsets_slice(text, entities)


def test_when_entity_straddles_window_edges_then_never_cut_or_duplicated(make_predictor, roberta_tok):
    by_id = label_words(roberta_tok, {"Anna": "B-PER", "Maria": "I-PER", "Olsen": "I-PER"})
    predictor = make_predictor(by_id, max_length=12, stride=4)  # body 10 tokens: edges everywhere
    for shift in range(14):
        text = "x " * shift + "Anna Maria Olsen went home"
        assert spans(predictor.predict(text)) == [("Anna Maria Olsen", "PER")], shift


def test_when_document_is_20000_chars_then_entities_from_its_end(make_predictor, roberta_tok):
    text = ("The weather was fine and nothing happened. " * 470) + "Finally Kari Nordmann reached Bergen."
    assert len(text) > 20_000
    by_id = label_words(roberta_tok, {"Kari": "B-PER", "Nordmann": "I-PER", "Bergen": "B-LOC"})
    entities = make_predictor(by_id).predict(text)
    assert spans(entities) == [("Kari Nordmann", "PER"), ("Bergen", "LOC")]
    assert entities[-1].end == len(text) - 1


def test_batch_is_sorted_by_length_and_padded_per_batch(make_predictor, roberta_tok):
    predictor = make_predictor({}, batch_size=2)
    texts = ["a " * 40, "b", "c " * 5, "d " * 20]
    predictor.predict_batch(texts)
    widths = [w for _, w in predictor.backend.batches]
    assert [r for r, _ in predictor.backend.batches] == [2, 2]
    assert widths == sorted(widths)  # short windows are batched together
    assert widths[0] < widths[-1]  # ... and padded only to their batch's longest row


def test_when_empty_or_zero_width_text_then_no_entities_and_no_model_call(make_predictor):
    predictor = make_predictor({})
    assert predictor.predict_batch(["", "   ", "\u200b"]) == [[], [], []]


def test_when_text_is_not_str_then_type_error(make_predictor):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        make_predictor({}).predict_batch(["ok", 3])
    with pytest.raises(TypeError, match="use predict"):
        make_predictor({}).predict_batch("one text, not a list")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"aggregation": "median"}, "aggregation"),
        ({"max_length": 3}, "max_length"),
        ({"stride": -1}, "stride"),
        ({"o_threshold": 1.5}, "o_threshold"),
        ({"batch_size": 0}, "batch_size"),
        ({"word_split": "spaces"}, "word_split"),
    ],
)
def test_when_settings_invalid_then_config_error(make_predictor, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_predictor({}, **kwargs)


def test_when_o_threshold_then_hesitant_entities_are_kept(make_predictor, roberta_tok):
    by_id = label_words(roberta_tok, {"Kari": "B-PER"})
    # O logit 4.0 vs B-PER 3.9: argmax says O, P(O) is about 0.51; a recall threshold keeps the name.
    text = "Kari came"
    assert make_predictor(by_id, high=3.9, o_logit=4.0).predict(text) == []
    hesitant = make_predictor(by_id, high=3.9, o_logit=4.0, o_threshold=0.6).predict(text)
    assert spans(hesitant) == [("Kari", "PER")]
    assert hesitant[0].score < 0.5
