"""``--engine ray`` under a real local Ray (2 CPUs): the same rows as without Ray, in input order, for
JSONL and Parquet, torch and ONNX, predict and deid; bad rows come back marked, never lost."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loraner.cli import app

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

NAMES = ["Ola Hansen", "Kari Nordmann", "Ada Lovelace", "José Müller", "Li Wei"]
PLACES = ["Bergen", "Oslo", "Tromsø", "New York", "Trondheim"]


def texts(count: int = 200) -> list[str]:
    rng = random.Random(5)
    out = []
    for i in range(count):
        name, place = rng.choice(NAMES), rng.choice(PLACES)
        text = f"{name} flew from {place} to {rng.choice(PLACES)} on day {i}."
        out.append(" ".join([text] * rng.randint(1, 12)))  # some longer than one window
    return out


@pytest.fixture(scope="module")
def local_ray():
    """One Ray for the module; the commands use it as it is and leave it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_equals_predict_without_ray_and_bad_rows_are_marked(local_ray, tiny_roberta_dir, tmp_path):
    good = [{"id": f"doc-{i}", "text": t, "source": "test"} for i, t in enumerate(texts())]
    (tmp_path / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good), encoding="utf-8")
    lines = [json.dumps(r) for r in good]
    lines[10:10] = ['{"id": "bad-number", "text": 5}', "not json {", ""]  # lines 11, 12 and a blank
    lines[100:100] = ['["a list"]']  # line 101
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    invoke("predict", "--model", str(tiny_roberta_dir), "-i", str(tmp_path / "good.jsonl"),
           "-o", str(tmp_path / "local.jsonl"))  # fmt: skip
    invoke("predict", "--model", str(tiny_roberta_dir), "-i", str(tmp_path / "mixed.jsonl"),
           "-o", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--concurrency", "2")  # fmt: skip

    rows = read_jsonl(tmp_path / "ray.jsonl")
    assert len(rows) == len(good) + 3  # every non-blank line, the bad ones included
    errors = [r for r in rows if "error" in r]
    assert [r["error"] for r in errors] == [
        'line 11: expected an object with a "text" string',
        "line 12: not valid JSON (Expecting value)",
        'line 101: expected an object with a "text" string',
    ]
    assert errors[0]["id"] == "bad-number" and errors[0]["entities"] is None
    expected = read_jsonl(tmp_path / "local.jsonl")
    assert [r for r in rows if "error" not in r] == expected  # row for row, in input order
    assert any(r["entities"] for r in expected)  # the comparison is not of empty lists


def test_parquet_with_onnx_equals_predict_without_ray(local_ray, tiny_onnx_dir, tmp_path):
    all_texts = texts()
    records = [{"id": i, "text": t} for i, t in enumerate(all_texts)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    table = pa.table({"id": list(range(len(all_texts) + 1)), "text": [*all_texts, None]})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=64)

    model = ["--model", str(tiny_onnx_dir), "--backend", "onnx"]
    invoke("predict", *model, "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "local.jsonl"))
    invoke("predict", *model, "-i", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"),
           "--engine", "ray", "--batch-size", "16")  # fmt: skip

    out = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["id"] for r in out] == list(range(len(all_texts) + 1))
    assert out[-1]["entities"] is None and out[-1]["error"] == 'expected an object with a "text" string'
    expected = read_jsonl(tmp_path / "local.jsonl")
    assert [r["entities"] for r in out[:-1]] == [r["entities"] for r in expected]
    assert all(r["error"] is None for r in out[:-1])


def test_deid_jsonl_equals_deid_without_ray(local_ray, tiny_roberta_dir, tmp_path):
    docs = [{"text": t} if i % 3 else {"id": f"n{i}", "text": t} for i, t in enumerate(texts(60))]
    (tmp_path / "notes.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    common = ["deid", "--model", str(tiny_roberta_dir), "-i", str(tmp_path / "notes.jsonl")]
    invoke(*common, "-o", str(tmp_path / "local.jsonl"))
    invoke(*common, "-o", str(tmp_path / "ray.jsonl"), "--engine", "ray")
    local, distributed = read_jsonl(tmp_path / "local.jsonl"), read_jsonl(tmp_path / "ray.jsonl")
    assert distributed == local
    assert local[1]["id"] == 2 and local[3]["id"] == "n3"  # ids kept, or the line number
    assert any(d["items"] for d in local)


def test_engine_ray_needs_files_of_a_known_format(tiny_roberta_dir, tmp_path):
    (tmp_path / "in.csv").write_text("text\nx\n", encoding="utf-8")
    for args, message in [
        (["Some text"], "--engine ray needs --input FILE and --output FILE"),
        (
            ["-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv")],
            "reads and writes .jsonl or .parquet",
        ),
    ]:
        result = CliRunner().invoke(
            app, ["predict", "--model", str(tiny_roberta_dir), "--engine", "ray", *args]
        )
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
