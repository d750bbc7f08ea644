from __future__ import annotations

import numpy as np
import pytest

from loraner.data.schemes import (
    OUTSIDE,
    Tag,
    TagCodes,
    detect_scheme,
    entity_runs,
    get_strategy,
    parse_tag,
    spans_from_tags,
    to_iob2,
)
from loraner.errors import DataError


@pytest.mark.parametrize(
    ("scheme", "tags", "expected"),
    [
        # IO keeps the full type; two adjacent same-typed words are one entity
        ("IO", ["person-actor", "person-actor", "O"], ["B-person-actor", "I-person-actor", "O"]),
        # IO: a dashed type name is not a prefix
        ("IO", ["building-airport", "O", "art-other"], ["B-building-airport", "O", "B-art-other"]),
        # IO: a type change starts a new entity
        ("IO", ["person-actor", "person-artist/author"], ["B-person-actor", "B-person-artist/author"]),
        # IO written with I- prefixes
        ("IO", ["I-PER", "I-PER", "O", "I-LOC"], ["B-PER", "I-PER", "O", "B-LOC"]),
        # IOB1: I- opens an entity; B- only splits adjacent same-typed entities
        ("IOB1", ["I-LOC", "B-LOC", "I-LOC", "O"], ["B-LOC", "B-LOC", "I-LOC", "O"]),
        # IOB1: a type change with I- starts a new entity
        ("IOB1", ["I-PER", "I-ORG"], ["B-PER", "B-ORG"]),
        # IOB2 is returned unchanged
        ("IOB2", ["B-PER", "I-PER", "B-PER", "O"], ["B-PER", "I-PER", "B-PER", "O"]),
        # BIOES: S- is a single-word entity, E- closes one
        (
            "BIOES",
            ["B-PER", "I-PER", "E-PER", "S-LOC", "S-LOC"],
            ["B-PER", "I-PER", "I-PER", "B-LOC", "B-LOC"],
        ),
        # BILOU spelling (L-/U-)
        ("BIOES", ["B-ORG", "L-ORG", "U-ORG"], ["B-ORG", "I-ORG", "B-ORG"]),
        # BIOES: I- after O is handled by the IOB1 rule (starts an entity)
        ("BIOES", ["O", "I-PER", "E-PER"], ["O", "B-PER", "I-PER"]),
        # BIOES: I- after a closed (E-) entity starts a new one
        ("BIOES", ["B-PER", "E-PER", "I-PER"], ["B-PER", "I-PER", "B-PER"]),
    ],
)
def test_when_scheme_given_then_tags_become_iob2(scheme: str, tags: list[str], expected: list[str]) -> None:
    assert to_iob2(tags, scheme) == expected


@pytest.mark.parametrize(
    ("sequences", "expected"),
    [
        ([["O", "person-actor", "building-airport"]], "IO"),  # Few-NERD style, no prefixes
        ([["B-PER", "I-PER", "O"], ["B-LOC"]], "IOB2"),
        ([["I-PER", "I-PER", "O"]], "IOB1"),  # only I- tags
        ([["B-PER", "O"], ["O", "I-LOC"]], "IOB1"),  # an I- that opens an entity
        ([["B-PER", "E-PER"], ["S-LOC"]], "BIOES"),
        ([["U-LOC", "O"]], "BIOES"),
        ([["O", "O"], []], "IOB2"),  # nothing to convert
    ],
)
def test_when_tags_seen_then_scheme_detected(sequences: list[list[str]], expected: str) -> None:
    assert detect_scheme(sequences) == expected


def test_when_auto_then_to_iob2_detects_per_sequence() -> None:
    assert to_iob2(["person-actor", "person-actor"]) == ["B-person-actor", "I-person-actor"]


@pytest.mark.parametrize(
    ("scheme", "tags", "bad_index", "fragment"),
    [
        ("auto", ["O", "X-FOO"], 1, "X-FOO"),  # unknown prefix letter
        ("IOB2", ["O", "X-FOO"], 1, "X-FOO"),
        ("IOB2", ["B-PER", "O", "I-PER"], 2, "does not continue"),  # strict IOB2
        ("IOB2", ["S-PER"], 0, "not valid in scheme IOB2"),
        ("IOB2", ["person-actor"], 0, "not valid in scheme IOB2"),
        ("IO", ["B-PER"], 0, "not valid in scheme IO"),
        ("IOB1", ["E-PER"], 0, "not valid in scheme IOB1"),
        ("BIOES", ["O", ""], 1, "empty tag"),
    ],
)
def test_when_tag_invalid_then_error_names_source_and_line(
    scheme: str, tags: list[str], bad_index: int, fragment: str
) -> None:
    lines = [10 + i for i in range(len(tags))]
    with pytest.raises(DataError, match=fragment) as info:
        to_iob2(tags, scheme, source="corpus.txt", line=lines)
    assert str(info.value).startswith(f"corpus.txt:{lines[bad_index]}: ")


def test_when_single_line_given_then_every_error_names_that_line() -> None:
    with pytest.raises(DataError, match=r"^rec\.jsonl:7: "):
        to_iob2(["B-PER", "Z-PER"], "auto", source="rec.jsonl", line=7)


def test_when_prefixed_and_unprefixed_mixed_then_detection_fails() -> None:
    with pytest.raises(DataError, match="mix"):
        detect_scheme([["B-PER", "person-actor"]], source="x.txt")


def test_when_scheme_unknown_then_error_lists_supported() -> None:
    with pytest.raises(DataError, match="IO, IOB1, IOB2, BIOES"):
        get_strategy("XYZ")


@pytest.mark.parametrize(
    ("alias", "name"), [("bilou", "BIOES"), ("IOBES", "BIOES"), ("bio", "IOB2"), ("io", "IO")]
)
def test_when_scheme_alias_then_strategy_found(alias: str, name: str) -> None:
    assert get_strategy(alias).name == name


def test_when_type_has_dash_then_not_read_as_prefix() -> None:
    tag = parse_tag("building-airport")
    assert (tag.prefix, tag.type) == ("", "building-airport")


def _spans_tag_by_tag(tags: list[Tag]) -> list[tuple[int, int, str]]:
    """The decoding rule spelled out one tag at a time: the reference for the array version."""
    spans: list[tuple[int, int, str]] = []
    open_at: int | None = None
    open_type = ""
    for i, tag in enumerate(tags):
        if tag.prefix == "O":
            if open_at is not None:
                spans.append((open_at, i, open_type))
            open_at = None
            continue
        if tag.prefix in ("B", "S") or open_at is None or tag.type != open_type:
            if open_at is not None:
                spans.append((open_at, i, open_type))
            open_at, open_type = i, tag.type
        if tag.prefix in ("E", "S"):
            spans.append((open_at, i + 1, open_type))
            open_at = None
    if open_at is not None:
        spans.append((open_at, len(tags), open_type))
    return spans


TAG_POOL = [OUTSIDE] + [Tag(prefix, kind) for prefix in ("B", "I", "E", "S", "") for kind in ("PER", "LOC")]


@pytest.mark.parametrize("seed", range(20))
def test_span_rule_on_arrays_matches_the_rule_tag_by_tag(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(200):
        tags = [TAG_POOL[i] for i in rng.integers(0, len(TAG_POOL), size=int(rng.integers(0, 16)))]
        assert spans_from_tags(tags) == _spans_tag_by_tag(tags)


@pytest.mark.parametrize("seed", range(10))
def test_when_sequences_are_laid_end_to_end_then_breaks_keep_their_entities_apart(seed: int) -> None:
    """Several sequences decoded at once, a break where each begins, give each sequence's own spans."""
    rng = np.random.default_rng(seed)
    sequences = [
        [TAG_POOL[i] for i in rng.integers(0, len(TAG_POOL), size=int(rng.integers(0, 8)))] for _ in range(30)
    ]
    joined = [tag for tags in sequences for tag in tags]
    codes = TagCodes.of(joined)
    breaks = np.zeros(len(joined), dtype=bool)
    starts = np.cumsum([0, *map(len, sequences)])[:-1]
    breaks[starts[starts < len(joined)]] = True
    firsts, stops = entity_runs(codes.prefixes, codes.types, breaks)
    expected = [
        (start + first, start + stop, kind)
        for start, tags in zip(starts.tolist(), sequences, strict=True)
        for first, stop, kind in _spans_tag_by_tag(tags)
    ]
    runs = zip(firsts.tolist(), stops.tolist(), strict=True)
    found = [(first, stop, codes.names[codes.types[first]]) for first, stop in runs]
    assert found == expected
