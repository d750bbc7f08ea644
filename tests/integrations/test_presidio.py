"""The Presidio bridge with the real presidio-analyzer and presidio-anonymizer: the predictor's entities,
one text at a time and through Presidio's batch engine, and an anonymized note end to end."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("presidio_analyzer")
pytest.importorskip("presidio_anonymizer")

from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig

from loraner.errors import ConfigError
from loraner.inference import NERPredictor
from loraner.integrations.presidio import (
    PRESIDIO_ENTITIES,
    LoranerNlpEngine,
    LoranerRecognizer,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def analyzer_of(*recognizers: LoranerRecognizer, patterns: bool = False) -> AnalyzerEngine:
    """An analyzer whose registry holds ``recognizers`` (plus, with ``patterns``, Presidio's pattern
    recognizers), over the loraner NLP engine."""
    registry = RecognizerRegistry()
    if patterns:
        registry.load_predefined_recognizers()
        registry.remove_recognizer("SpacyRecognizer")
    for recognizer in recognizers:
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=LoranerNlpEngine(list(recognizers)))


def as_rows(results) -> list[tuple[str, int, int, float]]:
    return sorted((r.entity_type, r.start, r.end, r.score) for r in results)


def expected_rows(recognizer: LoranerRecognizer, entities) -> list[tuple[str, int, int, float]]:
    return sorted((recognizer.entity_mapping[e.type], e.start, e.end, e.score) for e in entities)


@pytest.fixture(scope="module")
def recognizer(random_phi_model: Path) -> LoranerRecognizer:
    return LoranerRecognizer(model=random_phi_model)


def test_when_texts_are_analyzed_one_at_a_time_then_the_results_are_the_predictors_entities(
    recognizer, bridge_texts
):
    """One text per forward pass here, all texts in one batch there: the same entities, and scores equal
    up to float rounding (padded batches sum in another order)."""
    expected = recognizer.predictor.predict_batch(bridge_texts)
    analyzer = analyzer_of(recognizer)
    assert sum(map(len, expected)) > 500  # the random model finds entities of every type
    for text, entities in zip(bridge_texts, expected, strict=True):
        found = as_rows(analyzer.analyze(text, language="en"))
        want = expected_rows(recognizer, entities)
        assert [row[:3] for row in found] == [row[:3] for row in want]
        assert [row[3] for row in found] == pytest.approx([row[3] for row in want], abs=1e-5)


def test_when_the_batch_engine_analyzes_texts_then_one_predict_batch_gives_the_predictors_entities(
    recognizer, bridge_texts, count_batches
):
    expected = recognizer.predictor.predict_batch(bridge_texts)
    sizes = count_batches(recognizer.predictor)
    results = BatchAnalyzerEngine(analyzer_of(recognizer)).analyze_iterator(bridge_texts, language="en")
    assert sizes == [len(bridge_texts)]  # Presidio's default batch_size=1 does not split the batch
    assert [as_rows(r) for r in results] == [expected_rows(recognizer, e) for e in expected]


def test_when_the_batch_size_is_smaller_than_the_texts_then_each_batch_is_one_predict_batch(
    random_phi_model, bridge_texts, count_batches
):
    recognizer = LoranerRecognizer(model=random_phi_model)
    engine = LoranerNlpEngine([recognizer], texts_per_batch=5)
    registry = RecognizerRegistry(recognizers=[recognizer])
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine)
    sizes = count_batches(recognizer.predictor)
    results = BatchAnalyzerEngine(analyzer).analyze_iterator(bridge_texts, language="en", batch_size=3)
    assert sizes == [5, 5, 5, len(bridge_texts) - 15]  # the larger of the two sizes
    assert len(results) == len(bridge_texts)


def test_when_the_batch_engine_reads_a_dict_then_its_lists_are_batched_too(recognizer, bridge_texts):
    record = {"id": "note-1", "notes": bridge_texts[1:4]}
    analyzer = analyzer_of(recognizer)
    [key_id, key_notes] = BatchAnalyzerEngine(analyzer).analyze_dict(
        record, language="en", keys_to_skip=["id"]
    )
    expected = recognizer.predictor.predict_batch(bridge_texts[1:4])
    assert key_id.recognizer_results == []
    assert [as_rows(r) for r in key_notes.recognizer_results] == [
        expected_rows(recognizer, e) for e in expected
    ]


def test_when_results_are_explained_then_the_explanation_names_the_model_and_its_type(keyword_model):
    recognizer = LoranerRecognizer(model=keyword_model)
    [result] = analyzer_of(recognizer).analyze("Seen in Oslo.", language="en", return_decision_process=True)
    assert (result.entity_type, result.start, result.end) == ("LOCATION", 8, 12)
    explanation = result.analysis_explanation
    assert explanation.recognizer == "LoranerRecognizer"
    assert "keyword-phi" in explanation.textual_explanation and "(LOC)" in explanation.textual_explanation
    assert explanation.original_score == pytest.approx(result.score)
    assert result.recognition_metadata["loraner_type"] == "LOC"


@pytest.mark.parametrize(
    ("mapping", "text", "expected"),
    [
        # the documented defaults: PATIENT -> PERSON, LOC -> LOCATION, AGE -> AGE
        (None, "John Smith (45) in Oslo", [("AGE", 12, 14), ("LOCATION", 19, 23), ("PERSON", 0, 10)]),
        # a row overridden: the model's LOC reported under the user's name
        ({"LOC": "CITY"}, "John in Oslo", [("CITY", 8, 12), ("PERSON", 0, 4)]),
        # a type mapped to None is not reported
        ({"AGE": None}, "John Smith (45)", [("PERSON", 0, 10)]),
    ],
)
def test_when_an_entity_mapping_is_given_then_it_overrides_the_default_rows(
    keyword_model, mapping, text, expected
):
    recognizer = LoranerRecognizer(model=keyword_model, entity_mapping=mapping)
    found = analyzer_of(recognizer).analyze(text, language="en")
    assert sorted((r.entity_type, r.start, r.end) for r in found) == expected
    assert recognizer.supported_entities == sorted({e for e in recognizer.entity_mapping.values() if e})


def test_the_default_mapping_names_the_clinical_types_as_presidio_does():
    assert {t: PRESIDIO_ENTITIES[t] for t in ("PATIENT", "LOC", "DATE", "PHONE", "AGE")} == {
        "PATIENT": "PERSON",
        "LOC": "LOCATION",
        "DATE": "DATE_TIME",
        "PHONE": "PHONE_NUMBER",
        "AGE": "AGE",
    }
    assert PRESIDIO_ENTITIES["ID"] == "NATIONAL_ID"


def test_when_the_mapping_names_a_type_the_model_lacks_then_construction_fails(keyword_model):
    with pytest.raises(ConfigError, match=r"PATEINT.*its types: ID, DATE, LOC, PATIENT, AGE, PHONE"):
        LoranerRecognizer(model=keyword_model, entity_mapping={"PATEINT": "PERSON"})


def test_when_only_some_entities_are_asked_for_then_only_those_are_returned(keyword_model):
    recognizer = LoranerRecognizer(model=keyword_model)
    found = analyzer_of(recognizer).analyze("John Smith (45) in Oslo", language="en", entities=["LOCATION"])
    assert [(r.entity_type, r.start, r.end) for r in found] == [("LOCATION", 19, 23)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give either model=DIR or adapter=DIR"),  # nothing to load
        ({"model": "m", "adapter": "a"}, "give either model=DIR or adapter=DIR"),
        ({"model": "m", "base": "b"}, "base=MODEL goes with adapter=DIR"),
    ],
)
def test_when_the_model_is_named_wrongly_then_the_error_names_the_parameters(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LoranerRecognizer(**kwargs)


def test_when_a_predictor_and_a_model_are_both_given_then_construction_fails(keyword_model):
    predictor = NERPredictor.from_pretrained(keyword_model)
    with pytest.raises(ConfigError, match="not both"):
        LoranerRecognizer(model=keyword_model, predictor=predictor)


def test_when_the_model_is_an_onnx_export_then_its_entities_come_through(
    tmp_path_factory, random_phi_model, bridge_texts
):
    from loraner.export.onnx import export_onnx

    exported = tmp_path_factory.mktemp("onnx-phi")
    export_onnx(random_phi_model, exported)
    recognizer = LoranerRecognizer(model=exported, backend="onnx")
    assert recognizer.predictor.backend.name == "onnx"
    texts = bridge_texts[1:6]
    expected = NERPredictor.from_pretrained(exported, "onnx").predict_batch(texts)
    results = BatchAnalyzerEngine(analyzer_of(recognizer)).analyze_iterator(texts, language="en")
    assert [as_rows(r) for r in results] == [expected_rows(recognizer, e) for e in expected]


def test_when_the_model_is_a_hub_id_then_it_is_fetched_through_the_hub_client(fake_hub, keyword_model):
    hub = fake_hub({"acme/keyword-phi": keyword_model})
    recognizer = LoranerRecognizer(model="acme/keyword-phi@v1")
    assert hub.calls[0][0] == "acme/keyword-phi" and hub.calls[0][1]["revision"] == "v1"
    [result] = analyzer_of(recognizer).analyze("Oslo", language="en")
    assert result.entity_type == "LOCATION"


def test_when_the_model_is_one_adapter_of_a_base_then_it_predicts_as_that_adapter(
    tiny_adapter_runs, tiny_roberta_dir
):
    """By path (``adapter=`` on ``base=``), and as one adapter of a multi-adapter predictor that
    several recognizers can share."""
    from loraner.inference.adapters import MultiAdapterPredictor

    adapters = {name: run / "adapter" for name, run in tiny_adapter_runs.items()}
    texts = [json.loads(line)["text"] for line in (FIXTURES / "train" / "spans" / "test.jsonl").open()]
    # A high O-threshold, so that the tiny adapter's entities do not hang on what two epochs taught it.
    expected = NERPredictor.from_pretrained(adapters["places"], o_threshold=0.95).predict_batch(texts)
    assert any(expected)
    by_path = LoranerRecognizer(adapter=adapters["places"], base=str(tiny_roberta_dir), o_threshold=0.95)
    multi = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), adapters, o_threshold=0.95)
    shared = LoranerRecognizer(predictor=multi.predictor("places"))
    for recognizer in (by_path, shared):
        results = BatchAnalyzerEngine(analyzer_of(recognizer)).analyze_iterator(texts, language="en")
        assert [
            [(r.entity_type, r.start, r.end) for r in sorted(rs, key=lambda r: r.start)] for rs in results
        ] == [[(recognizer.entity_mapping[e.type], e.start, e.end) for e in found] for found in expected]


def test_when_a_note_is_anonymized_then_model_and_pattern_entities_are_replaced(keyword_model):
    """End to end: Presidio's analyzer (the loraner recognizer and Presidio's pattern recognizers) and
    Presidio's anonymizer with its own operators."""
    recognizer = LoranerRecognizer(model=keyword_model)
    analyzer = analyzer_of(recognizer, patterns=True)
    note = (
        "Patient John Smith (45) was moved from Oslo to Bergen.\n"
        "Phone +47 912 34 567, e-mail kari@example.com."
    )
    results = analyzer.analyze(note, language="en")
    anonymized = AnonymizerEngine().anonymize(
        note,
        results,
        operators={
            "DEFAULT": OperatorConfig("replace"),  # <ENTITY_TYPE>
            "PERSON": OperatorConfig("replace", {"new_value": "[NAME]"}),
            "PHONE_NUMBER": OperatorConfig(
                "mask", {"masking_char": "*", "chars_to_mask": 20, "from_end": False}
            ),
        },
    )
    assert anonymized.text == (
        "Patient [NAME] (<AGE>) was moved from <LOCATION> to <LOCATION>.\n"
        "Phone **************, e-mail <EMAIL_ADDRESS>."
    )
    by_type = sorted(item.entity_type for item in anonymized.items)
    assert by_type == ["AGE", "EMAIL_ADDRESS", "LOCATION", "LOCATION", "PERSON", "PHONE_NUMBER"]


def test_the_example_anonymizes_notes_without_any_spacy_model(keyword_model, tmp_path):
    """examples/presidio_anonymize.py as a user runs it, in a process with no network."""
    notes = tmp_path / "notes.txt"
    notes.write_text("John Smith (45) moved to Oslo.\nCall +47 912 34 567.\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "presidio_anonymize.py"),
            "--model",
            str(keyword_model),
            str(notes),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "<PERSON> (<AGE>) moved to <LOCATION>.",
        "Call <PHONE_NUMBER>.",
    ]


def test_when_presidio_logs_its_decision_process_then_the_batch_artifacts_serialise(keyword_model):
    """Presidio's decision-process log serialises the NLP artifacts; the model's entities they carry
    for the recognizer are not part of that JSON."""
    recognizer = LoranerRecognizer(model=keyword_model)
    registry = RecognizerRegistry(recognizers=[recognizer])
    engine = LoranerNlpEngine([recognizer])
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, log_decision_process=True)
    [results] = BatchAnalyzerEngine(analyzer).analyze_iterator(["John in Oslo"], language="en")
    assert sorted(r.entity_type for r in results) == ["LOCATION", "PERSON"]
    [(_, artifacts)] = engine.process_batch(["John in Oslo"], language="en")
    assert set(json.loads(artifacts.to_json())) == {
        "entities",
        "tokens",
        "lemmas",
        "tokens_indices",
        "keywords",
        "scores",
    }
    assert artifacts.lemmas == ["john", "in", "oslo"]  # lower-cased words for Presidio's context words


def test_when_the_recognizer_has_context_words_then_presidio_raises_its_score_near_them(keyword_model):
    """The tokens Presidio's context enhancement reads are made when it first reads them, in the batch
    path and one text at a time alike."""
    recognizer = LoranerRecognizer(model=keyword_model, context=["city"])
    analyzer = analyzer_of(recognizer)
    texts = ["Seen in the city of Oslo.", "Seen in Oslo."]
    [model_score] = [e.score for e in recognizer.predictor.predict(texts[0])]
    one_by_one = [analyzer.analyze(t, language="en", return_decision_process=True) for t in texts]
    batched = BatchAnalyzerEngine(analyzer).analyze_iterator(
        texts, language="en", return_decision_process=True
    )
    for [near], [far] in (one_by_one, batched):
        assert near.analysis_explanation.supportive_context_word == "city"
        assert near.score == pytest.approx(min(1.0, model_score + 0.35))
        assert far.analysis_explanation.supportive_context_word == ""
        assert far.score == pytest.approx(model_score)


def test_when_nothing_reads_the_tokens_then_the_batch_path_makes_none(keyword_model):
    """A registry of loraner recognizers alone never reads the tokens; read later, they are spaCy's."""
    recognizer = LoranerRecognizer(model=keyword_model)
    engine = LoranerNlpEngine([recognizer])
    [(_, artifacts)] = engine.process_batch(["John in Oslo:Bergen"], language="en")
    assert "tokens" not in vars(artifacts)
    assert [t.text for t in artifacts.tokens] == ["John", "in", "Oslo", ":", "Bergen"]
    assert artifacts.tokens_indices == [0, 5, 8, 12, 13]
    assert artifacts.keywords == ["john", "oslo", "bergen"]  # stop words and punctuation left out


def test_a_deep_copy_of_a_result_is_equal_and_independent(keyword_model):
    """Presidio's context enhancer deep-copies every result and changes the copies."""
    recognizer = LoranerRecognizer(model=keyword_model)
    [result] = recognizer.analyze("Seen in Oslo.", entities=None)
    twin = copy.deepcopy(result)
    fields = {**vars(result), "analysis_explanation": vars(result.analysis_explanation)}
    assert {**vars(twin), "analysis_explanation": vars(twin.analysis_explanation)} == fields
    twin.analysis_explanation.set_improved_score(1.0)
    twin.recognition_metadata["is_score_enhanced_by_context"] = True
    assert result.analysis_explanation.score == result.score
    assert "is_score_enhanced_by_context" not in result.recognition_metadata
