"""Data layer: readers -> ``Splits`` of IOB2 word examples or character-span examples.

Every reader is registered here, one call each, keyed by ``DataConfig.format``. Heavy optional
libraries (``datasets``, ``faker``) are imported inside the readers that need them.
"""

from __future__ import annotations

from loraner.data.conll import read_conll, read_fewnerd_txt
from loraner.data.examples import as_span_example
from loraner.data.hf import read_fewnerd_hub, read_hf
from loraner.data.jsonl import read_jsonl
from loraner.data.labelstudio import read_label_studio
from loraner.data.nordeid import read_nor_deid
from loraner.data.registry import get_reader, load_splits, reader_unit, register_reader, supported_formats
from loraner.data.synth import read_synth

# The one list of data formats (``DataConfig.format``): a new reader is one more line here.
register_reader("conll", read_conll, unit="words")
register_reader("fewnerd-txt", read_fewnerd_txt, unit="words")
register_reader("fewnerd-hub", read_fewnerd_hub, unit="words")
register_reader("hf", read_hf, unit="words")
register_reader("jsonl", read_jsonl, unit="spans")
register_reader("label-studio", read_label_studio, unit="spans")
register_reader("nor-deid", read_nor_deid, unit="spans")
register_reader("synth", read_synth, unit="spans")

__all__ = [
    "as_span_example",
    "get_reader",
    "load_splits",
    "reader_unit",
    "register_reader",
    "supported_formats",
]
