"""DeidPipeline: any detector's predict_batch + pattern recognisers + operators, torch-free."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from loraner.deid import DeidConfig, DeidPipeline, validate_deid_config, with_overrides
from loraner.deid.pipeline import deidentify_entities
from loraner.errors import ConfigError, DataError
from loraner.types import Entity

NOTE = "Pasient Kari Nordmann 😀 (45 år) bor i Bergen, tlf. 912 34 567."
NAMES = {"Kari Nordmann": "PATIENT", "Bergen": "LOC", "Ola Hansen": "PATIENT"}


class GazetteerDetector:
    """A fake model: finds the names in ``NAMES`` and records each call's batch."""

    def __init__(self, names: dict[str, str] = NAMES) -> None:
        self.names = names
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[str]) -> list[list[Entity]]:
        self.calls.append(list(texts))
        return [self.find(t) for t in texts]

    def find(self, text: str) -> list[Entity]:
        found = []
        for name, kind in self.names.items():
            at = text.find(name)
            if at >= 0:
                found.append(Entity(kind, name, at, at + len(name), 0.8))
        return sorted(found, key=lambda e: e.start)


def config(**raw: object) -> DeidConfig:
    return validate_deid_config(raw)


def replaced(result) -> list[tuple[str, str]]:
    return [(item.type, item.replacement) for item in result.items]


def test_when_recognizers_are_off_then_only_model_spans_are_replaced():
    entities, result = DeidPipeline(GazetteerDetector(), config()).run(NOTE)
    assert [e.text for e in entities] == ["Kari Nordmann", "Bergen"]
    assert result.text == "Pasient [PATIENT] 😀 (45 år) bor i [LOC], tlf. 912 34 567."


def test_when_recognizers_are_on_then_pattern_spans_are_fused_in():
    cfg = config(recognizers={"enabled": True})
    entities, result = DeidPipeline(GazetteerDetector(), cfg).run(NOTE)
    assert [(e.type, e.text) for e in entities][-1] == ("PHONE", "912 34 567")
    assert result.text.endswith("tlf. [PHONE].")
    for e in entities:  # fused entities still slice the original text
        assert NOTE[e.start : e.end] == e.text


def test_when_model_and_pattern_agree_on_type_then_one_merged_span():
    text = "Ring 912 34 567 i dag."
    detector = GazetteerDetector({"912 34": "PHONE"})  # the model found only part of the number
    cfg = config(recognizers={"enabled": True})
    entities, result = DeidPipeline(detector, cfg).run(text)
    assert [(e.type, e.text) for e in entities] == [("PHONE", "912 34 567")]
    assert result.text == "Ring [PHONE] i dag."


def test_when_batch_then_one_detector_call_and_outputs_in_order():
    detector = GazetteerDetector()
    texts = ["Ola Hansen i Bergen.", "ingen PHI her", NOTE]
    outputs = DeidPipeline(detector, config()).run_batch(texts)
    assert detector.calls == [texts]
    assert [o.result.text for o in outputs] == [
        "[PATIENT] i [LOC].",
        "ingen PHI her",
        "Pasient [PATIENT] 😀 (45 år) bor i [LOC], tlf. 912 34 567.",
    ]


def test_when_batch_pseudonymizes_then_a_name_gets_one_surrogate_across_texts():
    cfg = config(default={"operator": "pseudonymize", "locale": "nb_NO"})
    outputs = DeidPipeline(GazetteerDetector(), cfg).run_batch(["Ola Hansen kom.", "Ola Hansen dro."])
    first, second = (o.result.items[0].replacement for o in outputs)
    assert first == second and first != "Ola Hansen"


def test_when_items_are_applied_then_offsets_slice_both_texts():
    cfg = config(recognizers={"enabled": True}, per_type={"LOC": {"operator": "mask"}})
    entities, result = DeidPipeline(GazetteerDetector(), cfg).run(NOTE)
    for item, entity in zip(result.items, entities, strict=True):
        assert (item.start, item.end) == (entity.start, entity.end)
        assert result.text[item.new_start : item.new_end] == item.replacement
    assert ("LOC", "******") in replaced(result)


@pytest.mark.parametrize(
    ("detector_output", "error"),
    [
        ([], "1 texts but 0 entity lists"),  # the detector dropped a text
        ([[Entity("LOC", "Oslo", 0, 4)]], "does not match the document"),  # offsets into another text
    ],
)
def test_when_detector_output_is_inconsistent_then_data_error(detector_output, error):
    pipeline = DeidPipeline(lambda texts: detector_output, config())
    with pytest.raises(DataError, match=error):
        pipeline.run("Bergen er fint")


def test_when_hash_needs_a_missing_secret_then_config_error_before_the_detector_runs(no_secret):
    detector = GazetteerDetector()
    with pytest.raises(ConfigError, match="LORANER_DEID_SECRET"):
        DeidPipeline(detector, config(default={"operator": "hash"}))
    assert detector.calls == []


def test_when_overrides_are_given_then_they_are_validated_like_the_file():
    base = config(o_threshold=0.5, recognizers={"enabled": True, "fnr": False})
    changed = with_overrides(base, o_threshold=0.9, recognizers=False)
    assert (changed.o_threshold, changed.recognizers.enabled, changed.recognizers.fnr) == (0.9, False, False)
    assert with_overrides(base) == base  # nothing given: unchanged
    with pytest.raises(ConfigError, match="o_threshold"):
        with_overrides(base, o_threshold=1.5)


def test_when_entities_come_from_elsewhere_then_deidentify_entities_matches_the_pipeline():
    detector = GazetteerDetector()
    cfg = config(recognizers={"enabled": True})
    direct = deidentify_entities([NOTE], [detector.find(NOTE)], cfg)
    assert direct == DeidPipeline(detector, cfg).run_batch([NOTE])
