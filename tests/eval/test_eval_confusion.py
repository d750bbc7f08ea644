"""Type confusion between gold and predicted character spans, with hand-counted expectations.

Cases are written as IOB2 tags over one-character words ("w w w ...") and turned into spans.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from loraner.data.examples import as_span_example
from loraner.eval.confusion import MISSED, SPURIOUS, type_confusion
from loraner.eval.plots import plot_confusion
from loraner.types import WordExample


def spans(sequences: list[list[str]]):
    return [as_span_example(WordExample(["w"] * len(tags), tags)).spans for tags in sequences]


def confusion_of(gold: list[list[str]], pred: list[list[str]], labels: list[str] | None = None):
    return type_confusion(spans(gold), spans(pred), labels)


def plot(confusion, path: Path) -> Path:
    return plot_confusion(confusion, path, "confusion")


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def pairs(confusion) -> dict[tuple[str, str], int]:
    """Non-zero cells as {(gold, pred): count}, easier to compare than the whole matrix."""
    return {
        (g, p): confusion.matrix[i][j]
        for i, g in enumerate(confusion.row_labels)
        for j, p in enumerate(confusion.col_labels)
        if confusion.matrix[i][j]
    }


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        pytest.param(
            [["B-PER", "I-PER", "O", "B-LOC"]],
            [["B-PER", "I-PER", "O", "B-LOC"]],
            {("PER", "PER"): 1, ("LOC", "LOC"): 1},
            id="exact-matches-on-diagonal",
        ),
        pytest.param(
            [["B-person-other", "I-person-other"]],
            [["B-art-other", "I-art-other"]],
            {("person-other", "art-other"): 1},
            id="wrong-type-same-span",
        ),
        pytest.param(
            # Overlap of 2 tokens is enough: boundary errors still show the chosen type.
            [["B-PER", "I-PER", "I-PER"]],
            [["O", "B-PER", "I-PER"]],
            {("PER", "PER"): 1},
            id="partial-overlap-counts",
        ),
        pytest.param(
            # ORG[0:4] overlaps PER[0:1] by 1 and LOC[1:4] by 3 -> LOC. PER overlaps gold: not spurious.
            [["B-ORG", "I-ORG", "I-ORG", "I-ORG"]],
            [["B-PER", "B-LOC", "I-LOC", "I-LOC"]],
            {("ORG", "LOC"): 1},
            id="largest-overlap-wins",
        ),
        pytest.param(
            # Equal overlap (1 token each): the leftmost prediction wins.
            [["B-ORG", "I-ORG"]],
            [["B-PER", "B-LOC"]],
            {("ORG", "PER"): 1},
            id="tie-goes-left",
        ),
        pytest.param(
            [["B-PER", "O"]],
            [["O", "O"]],
            {("PER", MISSED): 1},
            id="missed",
        ),
        pytest.param(
            [["O", "O"]],
            [["O", "B-DATE"]],
            {(SPURIOUS, "DATE"): 1},
            id="spurious",
        ),
        pytest.param(
            # Sentence 1: PER->PER, LOC missed. Sentence 2: PER->LOC, spurious DATE, PER->PER.
            [["B-PER", "O", "B-LOC"], ["B-PER", "O", "O", "B-PER"]],
            [["B-PER", "O", "O"], ["B-LOC", "B-DATE", "O", "B-PER"]],
            {("PER", "PER"): 2, ("LOC", MISSED): 1, ("PER", "LOC"): 1, (SPURIOUS, "DATE"): 1},
            id="mixed-over-two-sentences",
        ),
    ],
)
def test_when_hand_checked_sequences_then_counts_match(gold, pred, expected):
    assert pairs(confusion_of(gold, pred)) == expected


def test_when_labels_given_then_their_order_is_kept_and_new_types_appended_sorted():
    conf = confusion_of([["B-PER", "B-ZZZ", "B-AAA"]], [["B-PER", "B-ZZZ", "B-AAA"]], labels=["PER", "LOC"])
    assert conf.labels == ["PER", "LOC", "AAA", "ZZZ"]
    assert conf.row_labels[-1] == SPURIOUS and conf.col_labels[-1] == MISSED
    assert conf.matrix[1] == [0, 0, 0, 0, 0]  # unseen LOC still has an all-zero row
    assert conf.count("PER", "PER") == 1


def test_when_written_to_csv_then_content_is_exact(tmp_path):
    # LOC[0:1] -> LOC, PER[2:3] -> LOC (wrong type), PER[4:5] missed, spurious PER at 6.
    gold = [["B-LOC", "O", "B-PER", "O", "B-PER", "O", "O"]]
    pred = [["B-LOC", "O", "B-LOC", "O", "O", "O", "B-PER"]]
    path = confusion_of(gold, pred).to_csv(tmp_path / "out" / "confusion.csv")
    assert path.read_text(encoding="utf-8") == (
        "gold\\pred,LOC,PER,MISSED\nLOC,1,0,0\nPER,1,0,1\nSPURIOUS,0,1,0\n"
    )


def test_when_plotted_then_file_is_a_png(tmp_path):
    conf = confusion_of([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "B-PER"]])
    path = plot(conf, tmp_path / "cm.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_when_many_types_then_plot_grows_with_them(tmp_path):
    types = [f"type-{i:02d}" for i in range(66)]
    gold = [[f"B-{t}", "O"] for t in types]
    pred = [[f"B-{types[(i + 1) % 66]}", "O"] if i % 5 == 0 else [f"B-{t}", "O"] for i, t in enumerate(types)]
    big = png_size(plot(confusion_of(gold, pred), tmp_path / "big.png"))
    small = png_size(plot(confusion_of(gold[:2], pred[:2]), tmp_path / "small.png"))
    assert big[0] > 2 * small[0] and big[1] > 2 * small[1]


def test_when_no_entities_then_matrix_is_just_the_zero_corner(tmp_path):
    conf = confusion_of([["O"]], [["O"]])
    assert conf.labels == [] and conf.matrix == [[0]]
    assert plot(conf, tmp_path / "empty.png").read_bytes()[:8] == PNG_MAGIC


def test_when_document_counts_differ_then_value_error():
    with pytest.raises(ValueError, match="1 gold documents but 2"):
        type_confusion([[]], [[], []])
