"""The ``datasets``-based readers, on small local DatasetDicts (only ``load_dataset`` is replaced)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loraner.data import load_splits
from loraner.data.hf import examples_from_hf_dataset
from loraner.errors import DataError
from loraner.settings import DataConfig

datasets = pytest.importorskip("datasets")

FINE = ["O", "person-actor", "person-politician", "building-airport"]
COARSE = ["O", "person", "building"]


def _fewnerd() -> Any:
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=COARSE)),
            "fine_ner_tags": datasets.Sequence(datasets.ClassLabel(names=FINE)),
        }
    )
    train = {
        "id": ["0", "1"],
        "tokens": [["Tom", "Hanks", "landed", "at", "Gardermoen"], ["Obama", "Biden", "spoke"]],
        "ner_tags": [[1, 1, 0, 0, 2], [1, 1, 0]],
        "fine_ner_tags": [[1, 1, 0, 0, 3], [2, 1, 0]],
    }
    test = {"id": ["9"], "tokens": [["Oslo"]], "ner_tags": [[0]], "fine_ner_tags": [[0]]}
    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(train, features=features),
            "validation": datasets.Dataset.from_dict(test, features=features),
            "test": datasets.Dataset.from_dict(test, features=features),
        }
    )


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    calls: list[tuple[str, str | None]] = []

    def load_dataset(name: str, config: str | None = None, **_: Any) -> Any:
        calls.append((name, config))
        return _fewnerd()

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.mark.parametrize(
    ("tag_type", "expected_train"),
    [
        (
            "fine",
            [
                ["B-person-actor", "I-person-actor", "O", "O", "B-building-airport"],
                ["B-person-politician", "B-person-actor", "O"],
            ],
        ),
        ("coarse", [["B-person", "I-person", "O", "O", "B-building"], ["B-person", "I-person", "O"]]),
    ],
)
def test_when_fewnerd_hub_then_class_names_become_iob2(
    fake_hub: list[tuple[str, str | None]], tag_type: str, expected_train: list[list[str]]
) -> None:
    splits = load_splits(DataConfig(format="fewnerd-hub", tag_type=tag_type))  # type: ignore[arg-type]
    assert fake_hub == [("DFKI-SLT/few-nerd", "supervised")]
    assert [ex.tags for ex in splits["train"]] == expected_train  # type: ignore[union-attr]
    assert [ex.id for ex in splits["train"]] == ["0", "1"]


def test_when_fewnerd_hub_sampled_then_seeded_subset(fake_hub: list[tuple[str, str | None]]) -> None:
    cfg = DataConfig(format="fewnerd-hub", sample={"train": 1, "validation": None})
    first, second = load_splits(cfg), load_splits(cfg)
    assert len(first["train"]) == 1
    assert first["train"][0].id == second["train"][0].id


def test_when_string_tags_then_scheme_converted() -> None:
    ds = datasets.Dataset.from_dict({"words": [["Ola", "i", "Oslo"]], "labels": [["I-PER", "O", "I-LOC"]]})
    [example] = examples_from_hf_dataset(ds, "words", "labels")
    assert example.tags == ["B-PER", "O", "B-LOC"]
    assert example.id == "0"


def test_when_hf_saved_to_disk_then_loaded_with_custom_columns(tmp_path: Path) -> None:
    features = datasets.Features(
        {
            "words": datasets.Sequence(datasets.Value("string")),
            "labels": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
        }
    )
    ds = datasets.Dataset.from_dict(
        {"words": [["Kari", "Nordmann", "."]], "labels": [[1, 2, 0]]}, features=features
    )
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "saved"))
    cfg = DataConfig(
        format="hf",
        path=str(tmp_path / "saved"),
        token_column="words",
        tag_column="labels",
        splits={"train": "train", "test": "test"},
    )
    splits = load_splits(cfg)
    assert splits["test"][0].tags == ["B-PER", "I-PER", "O"]  # type: ignore[union-attr]


def test_when_hf_hub_name_then_load_dataset_called(fake_hub: list[tuple[str, str | None]]) -> None:
    cfg = DataConfig(format="hf", hub_name="some/dataset", hub_config=None, tag_column="fine_ner_tags")
    splits = load_splits(cfg)
    assert fake_hub == [("some/dataset", None)]
    assert splits["train"][0].tags[0] == "B-person-actor"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("columns", "data", "fragment"),
    [
        (("tokens", "missing"), {"tokens": [["a"]]}, "column 'missing' not found"),
        (("tokens", "tags"), {"tokens": [["a", "b"]], "tags": [["O"]]}, "2 tokens but 1 tags"),
        (("tokens", "tags"), {"tokens": [["a"]], "tags": [["X-FOO"]]}, "X-FOO"),
    ],
)
def test_when_dataset_bad_then_error_names_source_and_row(
    columns: tuple[str, str], data: dict[str, Any], fragment: str
) -> None:
    ds = datasets.Dataset.from_dict(data)
    with pytest.raises(DataError, match=fragment) as info:
        examples_from_hf_dataset(ds, *columns, source="mydata[train]")
    assert str(info.value).startswith("mydata[train]")


def test_when_hub_split_missing_then_error_lists_available(fake_hub: list[tuple[str, str | None]]) -> None:
    with pytest.raises(DataError, match="available: train, validation, test"):
        load_splits(DataConfig(format="fewnerd-hub", splits={"train": "dev"}))


def test_when_hub_unreachable_then_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*_: Any, **__: Any) -> Any:
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="could not load dataset 'DFKI-SLT/few-nerd'"):
        load_splits(DataConfig(format="fewnerd-hub"))
