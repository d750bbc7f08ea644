"""Document-level consistency: a name the model found once is PHI wherever else it appears in the note.

A note names its patient in full once ("Pasientnavn: Christoffer Berg") and later by the first name
alone ("Christoffer klaget over ..."). The model tags the full name but misses the lone mention often
enough to make lone given names the largest share of leaked PHI on the Nor-DeID notes. Here every
capitalised word of a predicted span of a propagated type (``PATIENT`` by default) is looked up in the
rest of the same text, as a whole word with the same spelling; each hit becomes a span of that type
(scored like the span it came from). Only the model's own findings are spread, so no word list can
mark a stranger's name.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from loraner.types import Entity

# A capitalised word, hyphenated parts included ("Per-Arne", "O'Neil"); single letters are initials.
_NAME_PART = re.compile(r"(?<!\w)[^\W\d_][^\W\d_'’-]*(?:['’-][^\W\d_]+)*(?!\w)")


def name_parts(span_text: str) -> list[str]:
    """The capitalised words of a span of at least two letters: the strings to look for elsewhere."""
    return [w for w in _NAME_PART.findall(span_text) if len(w) >= 2 and w[0].isupper()]


def propagate_spans(text: str, entities: Sequence[Entity], types: Collection[str]) -> list[Entity]:
    """Every other whole-word occurrence in ``text`` of a name part of a ``types`` entity, as a new
    entity of that type (to be fused with ``entities``; occurrences they already cover come back too)."""
    score_of: dict[tuple[str, str], float] = {}
    for entity in entities:
        if entity.type not in types:
            continue
        for part in name_parts(text[entity.start : entity.end]):
            key = (part, entity.type)
            score_of[key] = max(score_of.get(key, 0.0), entity.score)
    found = []
    for (part, kind), score in score_of.items():
        for match in re.finditer(rf"(?<![\w'’-]){re.escape(part)}(?![\w'’-])", text):
            found.append(Entity(kind, match.group(), match.start(), match.end(), score))
    return found


__all__ = ["name_parts", "propagate_spans"]
