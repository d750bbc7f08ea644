"""Model spans after the model: names spread through the note, spans tidied at line breaks and edges."""

from __future__ import annotations

import pytest

from loraner.deid import DeidPipeline, validate_deid_config
from loraner.deid.pipeline import fused_spans
from loraner.deid.propagation import name_parts, propagate_spans
from loraner.deid.spans import tidy_spans
from loraner.errors import ConfigError
from loraner.types import Entity

NOTE = (
    "Pasientnavn: Per-Arne Ødegård. Bor på Ås. "
    "Per-Arne klager over smerter; Ødegårds kone ringte. "
    "Per kom også. Ødegård-Hansen er en annen. Lege: Ola Nilsen. Per-Arne ble utskrevet."
)


def entity(text: str, sub: str, kind: str, score: float = 0.8, nth: int = 0) -> Entity:
    at = -1
    for _ in range(nth + 1):
        at = text.index(sub, at + 1)
    return Entity(kind, sub, at, at + len(sub), score)


def test_name_parts_are_capitalised_words_of_two_letters_or_more():
    assert name_parts("Per-Arne Ødegård") == ["Per-Arne", "Ødegård"]
    assert name_parts("K. O'Neil jr") == ["O'Neil"]
    assert name_parts("Sykehuset i Ås 12") == ["Sykehuset", "Ås"]


def test_every_other_whole_word_occurrence_is_found_with_exact_offsets():
    model = [entity(NOTE, "Per-Arne Ødegård", "PATIENT", 0.7), entity(NOTE, "Ås", "LOC", 0.9)]
    found = propagate_spans(NOTE, model, ["PATIENT"])
    for e in found:
        assert NOTE[e.start : e.end] == e.text and e.type == "PATIENT" and e.score == 0.7
    texts = sorted(e.text for e in found)
    # Not "Per" alone, not "Ødegårds" or "Ødegård-Hansen" (other words), not the LOC "Ås" (type not listed).
    assert texts == ["Per-Arne", "Per-Arne", "Per-Arne", "Ødegård"]


def test_fused_spans_adds_the_lone_mentions_and_leaves_other_types_alone():
    model = [
        entity(NOTE, "Per-Arne Ødegård", "PATIENT"),
        entity(NOTE, "Ola Nilsen", "PATIENT"),
        entity(NOTE, "Ås", "LOC"),
    ]
    cfg = validate_deid_config({"propagate": ["PATIENT"]})
    spans = fused_spans(NOTE, model, cfg)
    assert [(e.type, e.text) for e in spans] == [
        ("PATIENT", "Per-Arne Ødegård"),
        ("LOC", "Ås"),
        ("PATIENT", "Per-Arne"),
        ("PATIENT", "Ola Nilsen"),
        ("PATIENT", "Per-Arne"),
    ]
    assert [(e.type, e.text) for e in fused_spans(NOTE, model, validate_deid_config({}))] == [
        ("PATIENT", "Per-Arne Ødegård"),
        ("LOC", "Ås"),
        ("PATIENT", "Ola Nilsen"),
    ]


def test_a_model_span_of_another_type_keeps_its_type():
    text = "Pasient: Molde Hansen. Innlagt i Molde."
    model = [entity(text, "Molde Hansen", "PATIENT"), entity(text, "Molde", "LOC", nth=1)]
    spans = fused_spans(text, model, validate_deid_config({"propagate": ["PATIENT"]}))
    assert [(e.type, e.text) for e in spans] == [("PATIENT", "Molde Hansen"), ("LOC", "Molde")]


def test_propagation_works_without_the_pattern_recognisers_in_the_pipeline():
    def detector(texts):
        return [[entity(t, "Per-Arne Ødegård", "PATIENT")] for t in texts]

    cfg = validate_deid_config({"propagate": ["PATIENT"], "recognizers": {"enabled": False}})
    _, result = DeidPipeline(detector, cfg).run(NOTE)
    assert "Per-Arne" not in result.text and "Ødegård." not in result.text
    assert result.text.count("[PATIENT]") == 3  # the full name and two lone "Per-Arne"
    assert "Ødegårds kone" in result.text  # a different word: only whole words are spread


def test_unknown_type_in_propagate_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown entity type 'PATIENTS' in propagate"):
        validate_deid_config({"propagate": ["PATIENTS"]})


# --- tidy_spans -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "predicted", "kept"),
    [
        ("ID 02637889350 \n\n30 mg", "02637889350 \n\n30", ["02637889350", "30"]),
        ("Sykehus: Ski sykehus, avd. B", "Ski sykehus,", ["Ski sykehus"]),
        ("innlagt (12.03.2020) på", "(12.03.2020)", ["(12.03.2020)"]),  # a bracket pair stays
        ("innlagt (12.03.2020) på", "12.03.2020)", ["12.03.2020"]),
        ("dato (   ) her", "(   )", []),  # nothing but punctuation
        ("Bor i Ås;\nØvre Ærø", "Ås;\nØvre Ærø", ["Ås", "Øvre Ærø"]),
    ],
)
def test_tidy_spans_cuts_lines_and_trims_edges_with_exact_offsets(text: str, predicted: str, kept: list[str]):
    found = tidy_spans(text, [entity(text, predicted, "LOC", 0.6)])
    assert [e.text for e in found] == kept
    for e in found:
        assert text[e.start : e.end] == e.text and e.type == "LOC" and e.score == 0.6


def test_tidy_is_applied_in_the_pipeline_only_when_configured():
    text = "Pasient: Kari Nordmann,\nBergen"
    model = [entity(text, "Kari Nordmann,\nBergen", "PATIENT")]
    raw = fused_spans(text, model, validate_deid_config({}))
    tidy = fused_spans(text, model, validate_deid_config({"tidy": True}))
    assert [e.text for e in raw] == ["Kari Nordmann,\nBergen"]
    assert [e.text for e in tidy] == ["Kari Nordmann", "Bergen"]
