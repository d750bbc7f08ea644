"""Pure decoding: label parsing, tag -> span rules, word grouping, aggregation, O threshold, scores."""

from __future__ import annotations

import numpy as np
import pytest

from loraner.data.schemes import Tag, parse_tag, spans_from_tags
from loraner.errors import ModelError
from loraner.inference.decoding import (
    choose_labels,
    decode_entities,
    decode_texts,
    group_words,
    parse_labels,
    word_distributions,
)
from loraner.inference.encoding import softmax


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("O", Tag("O", "")),  # outside
        ("B-PER", Tag("B", "PER")),  # IOB2 begin
        ("I-LOC", Tag("I", "LOC")),  # IOB2 inside
        ("E-ORG", Tag("E", "ORG")),  # BIOES end
        ("S-ORG", Tag("S", "ORG")),  # BIOES single
        ("L-ORG", Tag("E", "ORG")),  # BILOU last == end
        ("U-ORG", Tag("S", "ORG")),  # BILOU unit == single
        ("B_PER", Tag("B", "PER")),  # underscore separator some checkpoints use
        ("PER", Tag("", "PER")),  # IO label: bare type
        ("person-actor", Tag("", "person-actor")),  # Few-NERD IO type with a dash inside
    ],
)
def test_when_label_parsed_then_prefix_and_type(label, expected):
    assert parse_tag(label) == expected


def test_when_a_model_label_cannot_be_decoded_then_model_error_names_it():
    with pytest.raises(ModelError, match="X-FOO"):
        parse_labels(["O", "X-FOO"])


def tags(*labels: str) -> list[Tag]:
    return parse_labels(labels)


@pytest.mark.parametrize(
    ("labels", "spans"),
    [
        (("B-PER", "I-PER", "O", "B-LOC"), [(0, 2, "PER"), (3, 4, "LOC")]),  # plain IOB2
        (("B-PER", "B-PER"), [(0, 1, "PER"), (1, 2, "PER")]),  # B splits adjacent same type
        (("O", "I-PER", "I-PER"), [(1, 3, "PER")]),  # I after O starts an entity (lenient)
        (("B-PER", "I-LOC"), [(0, 1, "PER"), (1, 2, "LOC")]),  # type change splits
        (("PER", "PER", "LOC", "O", "PER"), [(0, 2, "PER"), (2, 3, "LOC"), (4, 5, "PER")]),  # IO
        (("B-ORG", "I-ORG", "E-ORG", "S-PER"), [(0, 3, "ORG"), (3, 4, "PER")]),  # BIOES
        (("O", "O"), []),  # nothing
        ((), []),  # empty
    ],
)
def test_when_tags_then_word_spans(labels, spans):
    assert spans_from_tags(tags(*labels)) == spans


def test_when_tokens_share_offsets_then_one_word_spanning_them():
    text = "東京 x"
    offsets = [(0, 1), (0, 1), (0, 1), (1, 2), (1, 2), (3, 4)]  # byte-level BPE splits each character
    words = group_words(text, offsets, [0, 0, 0, 0, 0, 1])
    assert [(w.start, w.end, w.tokens) for w in words] == [(0, 2, (0, 1, 2, 3, 4)), (3, 4, (5,))]


def test_when_word_is_whitespace_or_empty_then_it_is_dropped():
    text = "  a\n\nb  "
    offsets = [(0, 0), (2, 3), (3, 4), (4, 5), (5, 6), (7, 7)]
    words = group_words(text, offsets, [0, 1, 2, 3, 4, 5])
    assert [text[w.start : w.end] for w in words] == ["a", "b"]


def _words_one_token_at_a_time(text, offsets, word_ids):
    """The grouping rule spelled out token by token: the reference for the array version."""
    runs, words = [], []
    for i, word in enumerate(word_ids):
        if word is not None and runs and runs[-1][-1] == i - 1 and word_ids[i - 1] == word:
            runs[-1].append(i)
        elif word is not None:
            runs.append([i])
    for run in runs:
        spans = [offsets[t] for t in run if offsets[t][1] > offsets[t][0]]
        if not spans:
            continue
        start, end = min(s for s, _ in spans), max(e for _, e in spans)
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            words.append((start, end, tuple(run)))
    return words


@pytest.mark.parametrize("seed", range(40))
def test_word_grouping_on_arrays_matches_the_rule_token_by_token(seed):
    rng = np.random.default_rng(seed)
    text = "".join(rng.choice(list("ab \n\u3000\u00a0\u2028x\u200b東"), size=int(rng.integers(1, 40))))
    n = int(rng.integers(0, 30))
    starts = rng.integers(0, len(text) + 1, size=n)
    offsets = [(int(s), int(min(len(text), s + rng.integers(0, 4)))) for s in starts]
    word_ids, word = [], 0
    for _ in range(n):  # runs of one id, gaps of None, an id repeated after a gap
        roll = rng.random()
        word_ids.append(None if roll < 0.2 else word)
        word += roll > 0.6
    found = [(w.start, w.end, w.tokens) for w in group_words(text, offsets, word_ids)]
    assert found == _words_one_token_at_a_time(text, offsets, word_ids)


def test_aggregations_pick_first_mean_or_most_confident_subword():
    probs = np.array([[0.6, 0.4], [0.0, 1.0], [0.9, 0.1]], dtype=np.float32)
    words = group_words("abc", [(0, 1), (1, 2), (2, 3)], [0, 0, 0])
    assert np.allclose(word_distributions(probs, words, "first"), [[0.6, 0.4]])
    assert np.allclose(word_distributions(probs, words, "average"), [[0.5, 0.5]])
    assert np.allclose(word_distributions(probs, words, "max"), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="aggregation"):
        word_distributions(probs, words, "median")


def test_when_o_threshold_then_entity_wherever_p_o_below_it():
    dist = np.array([[0.6, 0.3, 0.1], [0.95, 0.03, 0.02], [0.2, 0.1, 0.7]], dtype=np.float32)
    assert choose_labels(dist, 0).tolist() == [0, 0, 2]  # argmax
    assert choose_labels(dist, 0, o_threshold=0.7).tolist() == [1, 0, 2]  # P(O)=0.6 < 0.7 -> best non-O
    assert choose_labels(dist, None, o_threshold=0.7).tolist() == [0, 0, 2]  # no O label: argmax


def test_score_is_mean_probability_of_chosen_labels_over_words():
    text = "Ann Lee"
    probs = np.array([[0.1, 0.9, 0.0], [0.3, 0.0, 0.7]], dtype=np.float32)
    entities = decode_entities(text, probs, [(0, 3), (4, 7)], [0, 1], tags("O", "B-PER", "I-PER"))
    assert len(entities) == 1
    entity = entities[0]
    assert (entity.text, entity.start, entity.end, entity.type) == ("Ann Lee", 0, 7, "PER")
    assert entity.score == pytest.approx(0.8)


def test_when_an_entity_would_span_a_line_break_then_each_line_is_its_own_entity():
    text = "Bosted: Oslo\nInnkomst Ann Lee"
    offsets = [(0, 6), (6, 7), (8, 12), (13, 21), (22, 25), (26, 29)]
    probs = np.array(
        [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]], dtype=np.float32
    )  # the model continues "Oslo" across the line break
    entities = decode_entities(text, probs, offsets, list(range(6)), tags("O", "B-LOC", "I-LOC"))
    assert [(e.text, e.type) for e in entities] == [("Oslo", "LOC"), ("Innkomst Ann Lee", "LOC")]


def _random_text_tokens(rng: np.random.Generator) -> tuple[str, list[tuple[int, int]], list[int | None]]:
    """A text of words, spaces and line breaks with its tokens: one to three per word, sometimes a
    token of no word (a special or whitespace token) between them."""
    text, offsets, word_ids = "", [], []
    for word in range(int(rng.integers(0, 12))):
        text += rng.choice([" ", "  ", "\n", " \n "]) if text else ""
        start = len(text)
        text += "".join(rng.choice(list("abcÅé東"), size=int(rng.integers(1, 6))))
        cuts = sorted({start, *rng.integers(start, len(text), size=int(rng.integers(0, 3))).tolist()})
        for a, b in zip(cuts, [*cuts[1:], len(text)], strict=True):
            offsets.append((a, b))
            word_ids.append(word)
        if rng.random() < 0.2:
            offsets.append((len(text), len(text) + 1 if len(text) else 0))
            word_ids.append(None)
    return text, offsets, word_ids


@pytest.mark.parametrize("aggregation", ["first", "average", "max"])
@pytest.mark.parametrize("seed", range(6))
def test_decoding_many_texts_at_once_gives_each_text_its_own_entities(seed, aggregation):
    """decode_texts lays every text's tokens end to end: no word, entity or line break leaks from one
    text into the next, and each text gets what decoding its probabilities alone gives."""
    rng = np.random.default_rng(seed)
    labels = tags("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-LOC", "S-PER", "MISC")
    texts, offsets, word_ids = zip(*(_random_text_tokens(rng) for _ in range(25)), strict=True)
    counts = [len(ids) for ids in word_ids]
    logits = rng.normal(scale=3.0, size=(sum(counts), len(labels))).astype(np.float32)
    together = decode_texts(texts, logits, offsets, word_ids, labels, aggregation, o_threshold=0.6)
    ends = np.cumsum(counts)
    for i, text in enumerate(texts):
        rows = softmax(logits[ends[i] - counts[i] : ends[i]])
        alone = decode_entities(text, rows, offsets[i], word_ids[i], labels, aggregation, o_threshold=0.6)
        assert together[i] == alone
        assert all(e.text == text[e.start : e.end] and "\n" not in e.text for e in alone)
    assert sum(map(len, together)) > 25  # the texts hold entities to compare


@pytest.mark.parametrize("words", range(1, 13))
def test_entity_score_is_numpys_mean_of_its_word_scores_to_the_last_bit(words):
    rng = np.random.default_rng(words)
    text = " ".join(["w"] * words)
    chosen = rng.uniform(0.5, 1.0, size=words).astype(np.float32)  # the chosen label's probability
    probs = np.zeros((words, 3), dtype=np.float32)
    probs[:, 0] = 1 - chosen
    probs[0, 1] = chosen[0]  # B-PER on the first word, I-PER after it: one entity of every word
    probs[1:, 2] = chosen[1:]
    offsets = [(2 * i, 2 * i + 1) for i in range(words)]
    [entity] = decode_entities(text, probs, offsets, list(range(words)), tags("O", "B-PER", "I-PER"))
    assert entity.score == float(chosen.mean())
