"""The spaCy bridge with the real spaCy: ``loraner_ner`` gives the predictor's entities (exactly with
``alignment_mode: split``, aligned to tokens as documented otherwise), batches ``nlp.pipe``, respects
existing entities, and survives ``to_disk``/``spacy.load``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("spacy")

import spacy

from loraner.errors import ConfigError
from loraner.inference import NERPredictor
from loraner.integrations.spacy import COPIED_MODEL_DIR, FACTORY, SCORE_EXTENSION


def pipeline(model: Path, lang: str = "en", **config) -> spacy.language.Language:
    nlp = spacy.blank(lang)
    nlp.add_pipe(FACTORY, config={"model": str(model), **config})
    return nlp


def rows(spans) -> list[tuple[str, int, int, float]]:
    return [(s.label_, s.start_char, s.end_char, s._.get(SCORE_EXTENSION)) for s in spans]


def entity_rows(entities) -> list[tuple[str, int, int, float]]:
    return [(e.type, e.start, e.end, e.score) for e in entities]


@pytest.fixture(scope="module")
def expected(random_phi_model, bridge_texts) -> list[list]:
    return NERPredictor.from_pretrained(random_phi_model).predict_batch(bridge_texts)


@pytest.mark.parametrize("lang", ["en", "nb"])
def test_when_tokens_are_split_at_entity_edges_then_doc_ents_are_the_predictors_entities(
    random_phi_model, bridge_texts, expected, lang
):
    nlp = pipeline(random_phi_model, lang, alignment_mode="split")
    docs = list(nlp.pipe(bridge_texts))
    assert sum(map(len, expected)) > 500
    for doc, text, entities in zip(docs, bridge_texts, expected, strict=True):
        assert doc.text == text
        assert rows(doc.ents) == entity_rows(entities)
        assert rows(doc.spans[FACTORY]) == entity_rows(entities)


@pytest.mark.parametrize("mode", ["expand", "contract"])
def test_when_tokens_are_kept_then_every_entity_is_aligned_to_tokens_as_documented(
    random_phi_model, bridge_texts, expected, mode
):
    """``expand``: the tokens an entity touches; ``contract``: the tokens inside it, else those it
    touches. Entities on token boundaries are unchanged; none is dropped from doc.spans (two that align
    to the same tokens and type are one span, with the higher score)."""
    nlp = pipeline(random_phi_model, alignment_mode=mode)
    moved = 0
    for doc, entities in zip(nlp.pipe(bridge_texts), expected, strict=True):
        want: dict[tuple[int, int, str], float] = {}
        for entity in entities:
            touching = doc.char_span(entity.start, entity.end, alignment_mode="expand")
            inside = doc.char_span(entity.start, entity.end, alignment_mode="contract")
            span = inside if mode == "contract" and inside is not None else touching
            key = (span.start, span.end, entity.type)
            want[key] = max(want.get(key, 0.0), entity.score)
            moved += (span.start_char, span.end_char) != (entity.start, entity.end)
        spans = doc.spans[FACTORY]
        assert {(s.start, s.end, s.label_): s._.get(SCORE_EXTENSION) for s in spans} == want
        assert len(spans) == len(want)
        assert {(s.start, s.end) for s in doc.ents} <= {(s.start, s.end) for s in spans}
    assert moved > 0  # the texts do put model entities off spaCy's token boundaries


@pytest.mark.parametrize(
    ("mode", "ents", "tokens"),
    [
        # "Smith@example.com" is one spaCy token; the model's PATIENT is "John Smith"
        ("expand", [("John Smith@example.com", "PATIENT"), ("Oslo", "LOC")], 7),
        ("contract", [("John", "PATIENT"), ("Oslo", "LOC")], 7),
        ("split", [("John Smith", "PATIENT"), ("Oslo", "LOC")], 8),  # "Smith" + "@example.com"
    ],
)
def test_when_an_entity_ends_inside_a_token_then_the_mode_decides_its_span(keyword_model, mode, ents, tokens):
    doc = pipeline(keyword_model, alignment_mode=mode)("Mail John Smith@example.com in Oslo today.")
    assert [(e.text, e.label_) for e in doc.ents] == ents
    assert len(doc) == tokens


def test_when_no_token_lies_inside_an_entity_then_contract_keeps_it_expanded(keyword_model):
    doc = pipeline(keyword_model, alignment_mode="contract")("Mail oslo@example.com today.")
    assert [(e.text, e.label_) for e in doc.ents] == [("oslo@example.com", "LOC")]


def test_when_entities_fall_in_one_token_then_one_is_an_ent_and_each_type_is_a_span(
    keyword_model,
):
    doc = pipeline(keyword_model)("Route: oslo@bergen.no and john@bergen.no")
    assert [(s.text, s.label_) for s in doc.spans[FACTORY]] == [
        ("oslo@bergen.no", "LOC"),  # oslo and bergen: the same tokens and type, one span
        ("john@bergen.no", "PATIENT"),  # two types on the same tokens: two spans, each with its score
        ("john@bergen.no", "LOC"),
    ]
    assert all(s._.get(SCORE_EXTENSION) > 0.99 for s in doc.spans[FACTORY])
    assert [(e.text, e.label_) for e in doc.ents] == [
        ("oslo@bergen.no", "LOC"),
        ("john@bergen.no", "PATIENT"),
    ]


@pytest.mark.parametrize(
    ("overwrite", "ents"),
    [
        # the existing CITY entity wins where it overlaps the model's LOC; John Smith is added
        (False, [("John Smith", "PATIENT"), ("Oslo", "CITY"), ("Monday", "DAY")]),
        # the model's LOC wins; the existing entity elsewhere (Monday) stays
        (True, [("John Smith", "PATIENT"), ("Oslo", "LOC"), ("Monday", "DAY")]),
    ],
)
def test_when_doc_ents_exist_then_overwrite_ents_decides_who_wins(keyword_model, overwrite, ents):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "CITY", "pattern": "Oslo"}, {"label": "DAY", "pattern": "Monday"}])
    nlp.add_pipe(FACTORY, config={"model": str(keyword_model), "overwrite_ents": overwrite})
    doc = nlp("John Smith moved to Oslo on Monday.")
    assert [(e.text, e.label_) for e in doc.ents] == ents
    assert [(s.text, s.label_) for s in doc.spans[FACTORY]] == [("John Smith", "PATIENT"), ("Oslo", "LOC")]


def test_when_nlp_pipe_runs_then_each_batch_is_one_predict_batch(
    random_phi_model, bridge_texts, count_batches
):
    nlp = pipeline(random_phi_model)
    sizes = count_batches(nlp.get_pipe(FACTORY).predictor)
    docs = list(nlp.pipe(bridge_texts, batch_size=8))
    assert sizes == [min(8, len(bridge_texts) - i) for i in range(0, len(bridge_texts), 8)]
    assert len(docs) == len(bridge_texts)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "no model"),
        (
            {"model": "m", "alignment_mode": "strict"},
            "alignment_mode 'strict' is not one of expand, contract, split",
        ),
        ({"model": "m", "base": "b"}, "base=MODEL goes with adapter=DIR"),
    ],
)
def test_when_the_config_is_wrong_then_add_pipe_names_the_problem(config, message):
    with pytest.raises(ConfigError, match=message):
        spacy.blank("en").add_pipe(FACTORY, config=config)


def test_when_a_pipeline_is_saved_then_it_reloads_from_the_models_path_without_its_weights(
    keyword_model, tmp_path
):
    nlp = pipeline(keyword_model, alignment_mode="split")
    text = "John Smith (45) moved from Oslo to Bergen."
    before = rows(nlp(text).ents)
    nlp.to_disk(tmp_path / "pipe")
    assert not any(p.suffix == ".safetensors" for p in (tmp_path / "pipe").rglob("*"))
    config = spacy.util.load_config(tmp_path / "pipe" / "config.cfg")
    assert config["components"][FACTORY]["model"] == str(keyword_model)
    assert config["components"][FACTORY]["alignment_mode"] == "split"
    reloaded = spacy.load(tmp_path / "pipe")
    assert reloaded.pipe_names == [FACTORY]
    assert rows(reloaded(text).ents) == before


def test_when_copy_model_is_set_then_the_pipeline_carries_the_model(keyword_model, tmp_path):
    own = shutil.copytree(keyword_model, tmp_path / "model")
    nlp = pipeline(own, copy_model=True)
    text = "John Smith (45) moved from Oslo to Bergen."
    before = rows(nlp(text).ents)
    nlp.to_disk(tmp_path / "pipe")
    shutil.rmtree(own)  # the pipeline no longer needs the original
    reloaded = spacy.load(tmp_path / "pipe")
    assert rows(reloaded(text).ents) == before
    assert Path(reloaded.get_pipe(FACTORY).predictor.path) == tmp_path / "pipe" / FACTORY / COPIED_MODEL_DIR


def test_when_docs_are_serialised_or_joined_then_their_scores_follow_them(keyword_model):
    from spacy.tokens import Doc, DocBin

    nlp = pipeline(keyword_model)
    docs = list(nlp.pipe(["John Smith in Oslo.", "Bergen"]))
    restored = list(DocBin(docs=docs, store_user_data=True).get_docs(nlp.vocab))
    assert [rows(d.ents) for d in restored] == [rows(d.ents) for d in docs]
    assert all(s._.get(SCORE_EXTENSION) is not None for d in restored for s in d.ents)
    joined = Doc.from_docs(docs)  # the second doc's characters move: its scores move with them
    assert [r[3] for r in rows(joined.ents)] == [r[3] for d in docs for r in rows(d.ents)]


def test_spacy_finds_the_component_through_the_installed_entry_point():
    """What lets ``add_pipe("loraner_ner")`` work after ``pip install loraner[spacy]`` without importing
    loraner: spaCy loads every ``spacy_factories`` entry point whenever it builds a pipeline."""
    from importlib.metadata import entry_points

    from loraner.integrations.spacy import make_loraner_ner

    found = [ep for ep in entry_points(group="spacy_factories") if ep.name == FACTORY]
    assert [ep.value for ep in found] == ["loraner.integrations.spacy:make_loraner_ner"]
    assert found[0].load() is make_loraner_ner
