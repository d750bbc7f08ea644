"""De-identify notes with Presidio and a loraner model, offline: no spaCy model is downloaded.

    pip install 'loraner[presidio]'
    python examples/presidio_anonymize.py --model runs/quickstart/merged notes.txt   # one note per line

Presidio's analyzer runs its pattern recognizers (phone numbers, e-mail addresses, IBANs, ...) and the
loraner model in place of its spaCy NER; its anonymizer replaces what they find with ``<ENTITY_TYPE>``.
The notes go through Presidio's batch engine: the model sees them in batches, not one at a time.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# Presidio's e-mail check (tldextract) would try to download the public suffix list: use the copy it
# ships. Read when Presidio is imported, so set first.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
from presidio_anonymizer import AnonymizerEngine

from loraner.integrations.presidio import LoranerNlpEngine, LoranerRecognizer


def build_analyzer(model: str) -> AnalyzerEngine:
    recognizer = LoranerRecognizer(model=model)  # PATIENT -> PERSON, LOC -> LOCATION, ...
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers()  # Presidio's pattern recognizers, and its spaCy NER one,
    registry.remove_recognizer("SpacyRecognizer")  # which the loraner model replaces
    registry.add_recognizer(recognizer)
    # Tokens from spaCy's blank pipeline (nothing to download); the model runs once per batch of notes.
    return AnalyzerEngine(registry=registry, nlp_engine=LoranerNlpEngine([recognizer]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notes", type=Path, help="a text file, one note per line")
    parser.add_argument("--model", required=True, help="loraner model directory or hub id")
    args = parser.parse_args()
    notes = args.notes.read_text(encoding="utf-8").splitlines()
    analyzer = build_analyzer(args.model)
    anonymizer = AnonymizerEngine()
    # "en": the language Presidio's pattern recognizers are registered for; the model reads any text.
    results = BatchAnalyzerEngine(analyzer).analyze_iterator(notes, language="en")
    for note, found in zip(notes, results, strict=True):
        print(anonymizer.anonymize(note, found).text)


if __name__ == "__main__":
    main()
