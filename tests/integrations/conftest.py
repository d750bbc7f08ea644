"""Bridge fixtures: model directories the bridges load by path, built from configs with the MiniLM
WordPiece tokenizer that the ``[offline]`` extra ships (no ``../shared`` needed), and the texts every
bridge must give the predictor's entities for.

Two models: a tiny *random* BERT (many entities of every type, wherever its weights put them: the
parity tests), and a *keyword* BERT whose weights give a few listed words their labels and every other
token O (tests that expect particular entities: alignment, anonymization).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from loraner.inference import NERPredictor
from loraner.modeldir import ModelMeta, write_meta
from loraner.types import iob2_labels

PHI_TYPES = ["ID", "DATE", "LOC", "PATIENT", "AGE", "PHONE"]  # loraner data synth's label set
PHI_LABELS = iob2_labels(PHI_TYPES)
# The keyword model's words (each one token of the uncased MiniLM vocabulary) and their labels.
KEYWORDS = {
    "john": "B-PATIENT",
    "smith": "I-PATIENT",
    "oslo": "B-LOC",
    "bergen": "B-LOC",
    "45": "B-AGE",
}
WINDOW = {"max_length": 64, "stride": 16}  # small windows: a long note crosses many of them

# Presidio's e-mail check (tldextract) fetches the public suffix list on first use unless told to use
# the copy it ships; read when tldextract is imported, so set before any test imports Presidio.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")


def build_tiny_bert(out: Path, tokenizer_dir: Path, labels: list[str], seed: int = 0) -> Path:
    """A 2-layer random BERT token classifier with the MiniLM tokenizer and ``loraner.json``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    return _save(BertForTokenClassification(config), tokenizer, out, labels, "tiny-random-phi")


def build_keyword_bert(out: Path, tokenizer_dir: Path, labels: list[str], words: dict[str, str]) -> Path:
    """A BERT token classifier that labels each of ``words`` (one vocabulary token each) as given and
    every other token O. Each token's embedding is the one-hot vector of its label; the attention and
    feed-forward outputs are zero, so each layer's residual passes it on unchanged (LayerNorm of a
    normalised vector is itself); the classifier reads the label back, scaled."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=len(labels),
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=4,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = BertForTokenClassification(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
        embeddings = model.bert.embeddings.word_embeddings.weight
        embeddings[:, labels.index("O")] = 1.0
        for word, label in words.items():
            [token_id] = tokenizer(word, add_special_tokens=False)["input_ids"]
            embeddings[token_id] = 0.0
            embeddings[token_id, labels.index(label)] = 1.0
        model.classifier.weight.copy_(torch.eye(len(labels)) * 4.0)
    return _save(model, tokenizer, out, labels, "keyword-phi")


def _save(model, tokenizer, out: Path, labels: list[str], name: str) -> Path:
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    write_meta(out, ModelMeta(name=name, labels=labels, **WINDOW))
    return out


@pytest.fixture(scope="session")
def random_phi_model(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("random-phi"), minilm_dir, PHI_LABELS)


@pytest.fixture(scope="session")
def keyword_model(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    return build_keyword_bert(tmp_path_factory.mktemp("keyword-phi"), minilm_dir, PHI_LABELS, KEYWORDS)


@pytest.fixture(scope="session")
def long_note(minilm_dir: Path) -> str:
    """Generated clinical notes joined into one note of at least 3,000 tokens."""
    from transformers import AutoTokenizer

    from loraner.data.synth import generate_notes

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    parts: list[str] = []
    for note in generate_notes(60, seed=25):
        parts.append(note.text)
        text = "\n\n".join(parts)
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= 3000:
            return text
    raise AssertionError("60 generated notes are under 3,000 tokens")


@pytest.fixture(scope="session")
def bridge_texts(long_note: str) -> list[str]:
    """What every bridge must answer exactly as the predictor does."""
    from loraner.data.synth import generate_notes

    return [
        long_note,
        "Jose\u0301 Mu\u0308ller (45) flyttet fra Tromsø til Bergen.",  # decomposed accents
        "Kari 🙂 Nordmann ringte fra Oslo 🇳🇴 i går; 👩‍⚕️ dr. Smith svarte.",  # emoji, ZWJ sequence, flag
        "John🙂Smith, Ålesund",  # an emoji inside a word
        "",
        "  \n ",
        *(note.text for note in generate_notes(12, seed=26)),
    ]


@pytest.fixture
def count_batches(monkeypatch: pytest.MonkeyPatch) -> Callable[[NERPredictor], list[int]]:
    """``count_batches(predictor)``: the number of texts of every ``predict_batch`` call ``predictor``
    gets from then on (a bridge must hand its texts over in batches, not one by one)."""

    def count(predictor: NERPredictor) -> list[int]:
        sizes: list[int] = []
        real = predictor.predict_batch

        def recording(texts, **kwargs):
            sizes.append(len(texts))
            return real(texts, **kwargs)

        monkeypatch.setattr(predictor, "predict_batch", recording)
        return sizes

    return count
