"""Apply the configured operators to a text's PHI spans, keeping every offset exact.

Offsets are Python ``str`` indices (code points), the same as :class:`~loraner.types.Span`, so they stay
right for æøå, emoji and CJK. Nothing here logs or stores text unless ``include_original`` asks for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from loraner.deid.config import DeidConfig, resolve_secret
from loraner.deid.operators import OperatorContext
from loraner.deid.spans import check_spans
from loraner.deid.surrogates import SurrogateState
from loraner.errors import DataError
from loraner.spans import SpanLike, resolve_overlaps, span_type


@dataclass(frozen=True)
class ReplacedSpan:
    """One applied edit: ``text[start:end]`` (original offsets) became ``new_text[new_start:new_end]``.

    ``operator`` is the one actually applied (``replace`` when pseudonymisation fell back).
    ``original`` is only filled with ``include_original=True``: it is the PHI itself.
    """

    type: str
    operator: str
    start: int
    end: int
    new_start: int
    new_end: int
    replacement: str
    original: str | None = None

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        if self.original is None:
            del out["original"]
        return out


@dataclass(frozen=True)
class DeidResult:
    """One de-identified text and, per replaced span, what was done (:class:`ReplacedSpan`)."""

    text: str
    items: list[ReplacedSpan] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "items": [item.to_dict() for item in self.items]}


def _new_state(config: DeidConfig, secret: bytes | None, document_key: str | None) -> SurrogateState:
    keyed = config.consistent_across_documents and secret is not None
    return SurrogateState(secret=secret, keyed=keyed, document_key=document_key)


def _replace_one(
    original: str, entity_type: str, config: DeidConfig, state: SurrogateState
) -> tuple[str, str]:
    """(replacement, operator name actually applied)."""
    op = config.operator_for(entity_type)
    ctx = OperatorContext(entity_type=entity_type, state=state)
    replacement = op.operate(original, ctx)
    if replacement is None:
        op = op.fallback()
        replacement = op.operate(original, ctx)
        assert replacement is not None, "fallback operators always produce text"
    return replacement, op.operator


def _apply(text: str, spans: Sequence[SpanLike], config: DeidConfig, state: SurrogateState) -> DeidResult:
    check_spans(text, spans)
    pieces: list[str] = []
    items: list[ReplacedSpan] = []
    cursor = 0  # end of the previous span in the original text
    new_len = 0  # length of the output built so far
    for span in resolve_overlaps(spans):
        original = text[span.start : span.end]
        kind = span_type(span)
        replacement, applied = _replace_one(original, kind, config, state)
        pieces.append(text[cursor : span.start])
        new_start = new_len + (span.start - cursor)
        pieces.append(replacement)
        new_len = new_start + len(replacement)
        items.append(
            ReplacedSpan(
                type=kind,
                operator=applied,
                start=span.start,
                end=span.end,
                new_start=new_start,
                new_end=new_len,
                replacement=replacement,
                original=original if config.include_original else None,
            )
        )
        cursor = span.end
    pieces.append(text[cursor:])
    return DeidResult(text="".join(pieces), items=items)


def deidentify(
    text: str, spans: Sequence[SpanLike], config: DeidConfig, *, document_key: str | None = None
) -> DeidResult:
    """De-identify one document.

    Overlapping spans are resolved first (longer wins; tie → higher score, then earlier start). Pseudonyms
    are consistent within the document; across documents only with ``consistent_across_documents`` (keyed),
    where ``document_key`` (e.g. a patient id) selects the date offset: same key → same offset.
    """
    secret = resolve_secret(config)
    return _apply(text, spans, config, _new_state(config, secret, document_key))


def deidentify_batch(
    texts: Sequence[str],
    spans_list: Sequence[Sequence[SpanLike]],
    config: DeidConfig,
    *,
    document_keys: Sequence[str | None] | None = None,
) -> list[DeidResult]:
    """De-identify documents with one shared memory: a name gets the same surrogate in every document of
    the batch, even without a secret. Date offsets are shared per document key; documents without a key
    share the batch's offset (pass distinct keys to shift unrelated patients independently)."""
    if len(texts) != len(spans_list):
        raise DataError(f"deidentify_batch: {len(texts)} texts but {len(spans_list)} span lists")
    if document_keys is not None and len(document_keys) != len(texts):
        raise DataError(f"deidentify_batch: {len(texts)} texts but {len(document_keys)} document keys")
    secret = resolve_secret(config)
    state = _new_state(config, secret, None)
    results = []
    for i, (text, spans) in enumerate(zip(texts, spans_list, strict=True)):
        state.document_key = document_keys[i] if document_keys is not None else None
        try:
            results.append(_apply(text, spans, config, state))
        except DataError as exc:
            raise DataError(f"document {i}: {exc}") from exc
    return results
