"""End to end with the real (random) tiny RoBERTa: loading, invariants, torch == ONNX."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loraner import defaults
from loraner.errors import ModelError
from loraner.inference import NERPredictor

TEXTS = [
    "José Müller flew from Oslo to São Paulo.",
    "",
    "😀 emoji first, then 東京 and 北京, then Zoë.",
    "short",
    "A long one. " * 120,  # > 512 tokens: several windows
    "Pasienten Kari Nordmann ble innlagt i Bergen 12.03.2024.",
]


def key(entities):
    return [(e.type, e.start, e.end) for e in entities]


@pytest.fixture(scope="module")
def torch_predictor(tiny_roberta_dir):
    return NERPredictor.from_pretrained(tiny_roberta_dir, backend="torch", threads=2, batch_size=4)


def test_when_plain_hf_checkpoint_then_labels_from_config_and_defaults(torch_predictor):
    info = torch_predictor.info
    assert info.labels == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert info.types == ["PER", "LOC"]
    assert (info.backend, info.max_length, info.stride, info.aggregation) == (
        "torch",
        512,
        defaults.STRIDE.value,
        "first",
    )


def test_when_loraner_json_then_its_window_settings_are_used(tmp_path, tiny_roberta_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_roberta_dir, model)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    meta = {"labels": labels, "max_length": 128, "stride": 16, "config": {"name": "quick"}}
    (model / "loraner.json").write_text(json.dumps(meta))
    info = NERPredictor.from_pretrained(model, backend="torch").info
    assert (info.max_length, info.stride, info.name) == (128, 16, "quick")
    # constructor arguments override the file
    assert NERPredictor.from_pretrained(model, backend="torch", stride=8).info.stride == 8


@pytest.mark.parametrize(
    ("meta", "argument", "expected"),
    [
        (None, None, "conll"),  # plain HF checkpoint: public NER models are word-trained
        ({"word_split": "tokenizer"}, None, "tokenizer"),  # what training recorded
        ({"config": {"data": {"format": "nor-deid"}}}, None, "tokenizer"),  # older loraner.json: by format
        ({"config": {"data": {"format": "conll"}}}, None, "conll"),
        ({"word_split": "tokenizer"}, "conll", "conll"),  # an explicit argument wins
    ],
)
def test_word_split_comes_from_argument_then_meta_then_data_format(
    tmp_path, tiny_roberta_dir, meta, argument, expected
):
    model = tmp_path / "model"
    shutil.copytree(tiny_roberta_dir, model)
    if meta is not None:
        (model / "loraner.json").write_text(json.dumps(meta))
    predictor = NERPredictor.from_pretrained(model, backend="torch", word_split=argument)
    assert predictor.word_split == expected
    assert predictor.info.to_dict()["word_split"] == expected


def test_when_word_split_unknown_then_config_error(tmp_path, tiny_roberta_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_roberta_dir, model)
    (model / "loraner.json").write_text(json.dumps({"word_split": "whitespace"}))
    expected = r"loraner\.json: word_split: Input should be 'conll' or 'tokenizer'"
    with pytest.raises(ModelError, match=expected):
        NERPredictor.from_pretrained(model, backend="torch")


def test_invariants_offsets_slice_and_batch_equals_singles(torch_predictor):
    batch = torch_predictor.predict_batch(TEXTS)
    singles = [torch_predictor.predict(t) for t in TEXTS]
    for text, entities in zip(TEXTS, batch, strict=True):
        for e in entities:
            assert e.text == text[e.start : e.end]
    assert [key(b) for b in batch] == [key(s) for s in singles]
    for b, s in zip(batch, singles, strict=True):
        assert [e.score for e in b] == pytest.approx([e.score for e in s], abs=1e-4)
    assert batch[4], "the random model labels something in a long text"
    assert max(e.end for e in batch[4]) > len(TEXTS[4]) * 0.9, "entities from the last window"


def test_onnx_backend_matches_torch(torch_predictor, tiny_onnx_dir):
    onnx = NERPredictor.from_pretrained(tiny_onnx_dir, batch_size=4)  # auto -> onnx
    assert onnx.info.backend == "onnx"
    assert [key(e) for e in onnx.predict_batch(TEXTS)] == [
        key(e) for e in torch_predictor.predict_batch(TEXTS)
    ]


def test_when_torch_asked_for_onnx_dir_then_error_names_the_fix(tiny_onnx_dir):
    with pytest.raises(ModelError, match="backend='onnx'"):
        NERPredictor.from_pretrained(tiny_onnx_dir, backend="torch")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "/nonexistent/model"}, "not found"),
        ({"backend": "tensorflow"}, "backend"),
        ({"device": "cuda"}, "cpu only"),
    ],
)
def test_when_model_cannot_load_then_model_error(tiny_onnx_dir, kwargs, message):
    args = {"path": tiny_onnx_dir, "backend": "onnx", **kwargs}
    with pytest.raises(ModelError, match=message):
        NERPredictor.from_pretrained(**args)


def test_when_no_labels_anywhere_then_model_error(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"no config\.json with id2label"):
        NERPredictor.from_pretrained(tmp_path)
