"""The serving image has no Transformers: ``modeldir.load_fast_tokenizer`` reads ``tokenizer.json`` with the
``tokenizers`` library alone. It must tokenize exactly as Transformers' fast tokenizer of the same
directory: ids, character offsets, word ids, special tokens, padding id and window, and therefore the
entities the engine returns, on short and windowed long texts and for both word splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loraner.data.alignment import special_tokens
from loraner.data.words import split_words
from loraner.inference import NERPredictor, OnnxBackend
from loraner.inference.encoding import TokenizedText, tokenize_texts
from loraner.modeldir import (
    FastTokenizer,
    ModelMeta,
    load_fast_tokenizer,
    load_tokenizer,
    model_meta,
    model_type,
)

TEXTS = [
    "Kari Nordmann bor i Bergen.",
    "Pasienten Kåre Ødegård (45) ble innlagt på Haukeland; datteren Åse Bø ringte fra Tromsø.",
    "José Müller flew to Oslo 🇳🇴 on 12.03.2024, café naïve 東京 e\u0301",  # emoji, CJK, a combining accent
    "  two  spaces,\ttab and\nnewline  ",
    "U.S. officials met Dr. O'Neill in St. Louis, Mo. (tel. +47 22 33 44 55).",
    " ".join(f"Dag {i}: Øystein Ås møtte fru Gløersen på Østbanen i Bærum." for i in range(60)),  # windows
]


def roberta_without_prefix_space(out: Path, tokenizer_dir: Path, tiny_roberta_dir: Path) -> Path:
    """A RoBERTa directory whose tokenizer.json does not add the prefix space (as a plain hub checkpoint
    saves it): both loaders must turn it on, as the model saw words in pre-training."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(out))
    state = json.loads((out / "tokenizer.json").read_text())
    assert state["pre_tokenizer"]["add_prefix_space"] is False
    (out / "config.json").write_text((tiny_roberta_dir / "config.json").read_text())
    return out


@pytest.fixture(scope="module", params=["roberta", "roberta-no-prefix-space", "minilm-bert"])
def model_dir(request, tmp_path_factory, tiny_roberta_dir, roberta_tokenizer_dir) -> Path:
    if request.param == "roberta":
        return tiny_roberta_dir
    if request.param == "roberta-no-prefix-space":
        out = tmp_path_factory.mktemp("plain-roberta")
        return roberta_without_prefix_space(out, roberta_tokenizer_dir, tiny_roberta_dir)
    return request.getfixturevalue("minilm_dir")  # BERT WordPiece, uncased; truncation 128 in its file


@pytest.mark.parametrize("word_split", ["tokenizer", "conll"])
def test_fast_tokenizer_tokenizes_as_transformers_does(model_dir, word_split):
    reference = load_tokenizer(model_dir)
    fast = load_fast_tokenizer(model_dir, model_type(model_dir))
    assert isinstance(fast, FastTokenizer) and not isinstance(reference, FastTokenizer)
    assert tokenize_texts(fast, TEXTS, word_split) == tokenize_texts(reference, TEXTS, word_split)
    assert len(tokenize_texts(fast, TEXTS[-1:], word_split)[0].input_ids) > 512, "no truncation"
    assert special_tokens(fast) == special_tokens(reference)
    assert (fast.pad_token_id, len(fast)) == (reference.pad_token_id, len(reference))
    no_window = ModelMeta(labels=["O"])  # a checkpoint without loraner.json: the tokenizer's limit
    assert no_window.window(fast) == no_window.window(reference)


def transformers_tokens(tokenizer, texts: list[str], word_split: str) -> list[TokenizedText]:
    """Each text's tokens as a Transformers call returns them (``conll``: its words, each token's offsets
    moved from its word to the text, one token at a time): the reference for the engine's own reading."""
    if word_split == "tokenizer":
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [
            TokenizedText(enc["input_ids"][i], [tuple(o) for o in enc["offset_mapping"][i]], enc.word_ids(i))
            for i in range(len(texts))
        ]
    words = [split_words(text) for text in texts]
    enc = tokenizer(
        [[text[a:b] for a, b in spans] for text, spans in zip(texts, words, strict=True)],
        is_split_into_words=True,
        add_special_tokens=False,
        return_offsets_mapping=True,
        verbose=False,
    )
    out = []
    for i, spans in enumerate(words):
        ids = enc.word_ids(i)
        offsets = [
            (0, 0) if w is None else (spans[w][0] + a, spans[w][0] + b)
            for (a, b), w in zip(enc["offset_mapping"][i], ids, strict=True)
        ]
        out.append(TokenizedText(enc["input_ids"][i], offsets, ids))
    return out


@pytest.mark.parametrize("word_split", ["tokenizer", "conll"])
def test_the_engine_reads_the_tokens_a_transformers_call_returns(model_dir, word_split):
    """The engine reads the Rust tokenizer's encodings itself (``modeldir.encode_batch``); it gets what
    Transformers' call gets, also after a call that left truncation and padding set on the Rust tokenizer
    (Transformers leaves them there)."""
    tokenizer = load_tokenizer(model_dir)
    expected = transformers_tokens(tokenizer, TEXTS, word_split)
    assert tokenize_texts(tokenizer, TEXTS, word_split) == expected
    tokenizer(TEXTS, truncation=True, max_length=8, padding="max_length")
    assert tokenizer.backend_tokenizer.truncation is not None, "the state this test is about"
    assert tokenize_texts(tokenizer, TEXTS, word_split) == expected
    assert len(expected[-1].input_ids) > 512


@pytest.mark.parametrize("word_split", ["tokenizer", "conll"])
def test_the_engine_returns_the_same_entities_with_either_tokenizer(tiny_onnx_dir, word_split):
    meta = model_meta(tiny_onnx_dir).with_overrides(max_length=32, stride=8, word_split=word_split)
    backend = OnnxBackend.from_file(tiny_onnx_dir / "model.onnx", threads=1)
    reference = NERPredictor.from_meta(load_tokenizer(tiny_onnx_dir), backend, meta)
    fast = NERPredictor.from_meta(load_fast_tokenizer(tiny_onnx_dir, "roberta"), backend, meta)
    expected = reference.predict_batch(TEXTS)
    assert sum(map(len, expected)) > 0, "a comparison of nothing"
    assert fast.predict_batch(TEXTS) == expected


def test_when_a_directory_has_no_tokenizer_json_then_the_error_says_what_is_needed(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(Exception, match=r"no tokenizer\.json.*loraner export onnx"):
        load_fast_tokenizer(tmp_path)
