"""``loraner.jobs`` below the commands: the one check of a row, a model failure marked on its row alone,
the writer's strict stop, and the Ray actor on batches of columns (no running Ray needed)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from loraner.errors import DataError
from loraner.inference import NERPredictor
from loraner.jobs import Document, PredictTask, read_documents
from loraner.jobs.ray import RayNERPredictor
from loraner.jobs.run import write_lines
from loraner.types import Entity


def test_when_rows_are_bad_then_each_is_a_document_naming_its_line_and_reason_not_its_text(tmp_path):
    lines = [
        b'{"id": "a", "text": "Kari Nordmann"}',  # 1: good
        b'{"text": "Oslo\xe2\x80\xa8Bergen"}',  # 2: a raw U+2028 inside the string: one record
        b"",  # 3: blank, no row
        b"Kari Nordmann {",  # 4: not JSON
        b"[" * 100_000,  # 5: nested too deeply for the parser
        b'["Kari Nordmann"]',  # 6: not an object
        b'{"text": 5}',  # 7: text not a string
        b'{"text": "Kari \\ud800"}',  # 8: a lone surrogate
        b'{"text": "Troms\xf8"}',  # 9: not UTF-8
        b'{"text": "Kari", "document_key": 7}',  # 10: a key that is not a string
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    found = [(d.id, d.text, d.error) for d in read_documents(source, keys=True)]
    assert found == [
        ("a", "Kari Nordmann", None),
        (2, "Oslo\u2028Bergen", None),
        (4, None, f"{source}:4: not valid JSON (Expecting value)"),
        (5, None, f"{source}:5: not valid JSON (nested too deeply)"),
        (6, None, f'{source}:6: expected an object with a "text" string'),
        (7, None, f'{source}:7: expected an object with a "text" string'),
        (8, None, f'{source}:8: "text" contains a lone surrogate (U+D800) at character 5'),
        (9, None, f"{source}:9: not UTF-8 text (invalid start byte at byte 15 of the line)"),
        (10, None, f'{source}:10: "document_key" must be a string'),
    ]
    assert "Kari" not in "".join(error for *_, error in found if error)
    assert [d.error for d in read_documents(source)][-1] is None  # predict has no use for the key


class PickyPredictor:
    """Finds "Oslo"; fails, quoting the text, on any batch holding "boom"."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        self.calls.append(list(texts))
        if "Kari boom" in texts:
            raise RuntimeError("cannot take 'Kari boom'")
        return [[Entity("LOC", "Oslo", 0, 4, 0.9)] if t.startswith("Oslo") else [] for t in texts]


def test_when_the_model_fails_on_one_document_then_only_its_row_gets_an_error():
    predictor = PickyPredictor()
    task = PredictTask(predictor)
    documents = [
        Document({"id": 1, "text": "Oslo"}, "Oslo", where="in.jsonl:1"),
        Document({"id": 2, "text": "Kari boom"}, "Kari boom", where="in.jsonl:2"),
        Document({"id": 3}, id=3, where="in.jsonl:3", problem='expected an object with a "text" string'),
        Document({"id": 4, "text": "Bergen"}, "Bergen", where="in.jsonl:4"),
    ]
    records = [task.record(outcome) for outcome in task.process(documents)]
    oslo = {"type": "LOC", "text": "Oslo", "start": 0, "end": 4, "score": 0.9}
    assert records == [
        {"id": 1, "text": "Oslo", "entities": [oslo]},
        {"id": 2, "entities": None, "error": "in.jsonl:2: inference failed (RuntimeError)"},  # no text
        {"id": 3, "entities": None, "error": 'in.jsonl:3: expected an object with a "text" string'},
        {"id": 4, "text": "Bergen", "entities": []},
    ]
    assert predictor.calls == [["Oslo", "Kari boom", "Bergen"], ["Oslo"], ["Kari boom"], ["Bergen"]]


@pytest.mark.parametrize(
    ("strict", "written", "raised"),
    [
        (False, "a\nb\nc\n", None),  # the error row is written and counted
        (True, "a\n", "in.jsonl:2: bad"),  # stops at it: nothing from it on
    ],
)
def test_when_a_row_failed_then_the_writer_counts_it_or_stops_there(strict, written, raised):
    sink = io.StringIO()
    lines = [("a\n", None), ("b\n", "in.jsonl:2: bad"), ("c\n", None)]
    if raised:
        with pytest.raises(DataError, match=raised):
            write_lines(lines, sink, strict=strict)
    else:
        summary = write_lines(lines, sink, strict=strict)
        assert (summary.rows, summary.failed, summary.first_error) == (3, 1, "in.jsonl:2: bad")
    assert sink.getvalue() == written


@pytest.fixture(scope="module")
def torch_predictor(tiny_roberta_dir: Path) -> NERPredictor:
    return NERPredictor.from_pretrained(tiny_roberta_dir, backend="torch", threads=2, batch_size=4)


def test_ray_actor_maps_dict_and_dataframe_batches(torch_predictor):
    actor = RayNERPredictor(predictor=torch_predictor)
    out = actor({"id": [1, 2, 3], "text": ["José Müller", "Oslo", None]})
    assert out["id"] == [1, 2, 3]
    assert out["entities"][:2] == [
        [e.to_dict() for e in torch_predictor.predict(t)] for t in ["José Müller", "Oslo"]
    ]
    assert out["entities"][2] is None
    assert out["error"] == [None, None, 'expected an object with a "text" string']
    pandas = pytest.importorskip("pandas")
    frame = actor(pandas.DataFrame({"text": ["José Müller", "Oslo"]}))
    assert list(frame["entities"]) == out["entities"][:2]


def test_ray_actor_writes_label_studio_tasks_and_no_line_for_a_failed_row(torch_predictor):
    pyarrow = pytest.importorskip("pyarrow")
    from loraner.jobs.ray import LINE, RAW, result_lines

    actor = RayNERPredictor(
        predictor=torch_predictor, fmt="jsonl", source="in.jsonl", output_format="label-studio"
    )
    raws = [b'{"id": 1, "text": "Kari bor i Oslo."}', b'{"txt": "typo"}', b""]
    out = actor(pyarrow.table({LINE: [1, 2, 3], RAW: pyarrow.array(raws, pyarrow.binary())}))
    (task_line, error), (missing, problem) = list(result_lines([out]))
    task = json.loads(task_line)
    assert task["data"] == {"id": 1, "text": "Kari bor i Oslo."} and error is None
    assert task["predictions"][0]["model_version"] == torch_predictor.version
    assert missing is None and problem.startswith("in.jsonl:2:")  # counted by the writer, no task written
