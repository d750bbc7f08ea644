"""``--engine ray`` under a real local Ray (2 CPUs): the same rows as without Ray, in input order, for
JSONL and Parquet, torch and ONNX, predict and deid; bad rows come back marked as without Ray, never
lost, and the command exits 1; with --strict the first bad row stops both engines before the model loads."""

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


def invoke(*args: str, exit_code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == exit_code, result.output + repr(result.exception)
    return result.output


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def mixed_jsonl(path: Path) -> Path:
    """200 good rows with bad ones among them (lines 11, 12, 14, 102) and a blank line (13)."""
    good = [{"id": f"doc-{i}", "text": t, "source": "test"} for i, t in enumerate(texts())]
    lines = [json.dumps(record).encode() for record in good]
    lines[10:10] = [b'{"id": "bad-number", "text": 5}', b"not json {", b"", b'{"text": "Troms\xf8"}']
    lines[101:101] = [b'["a list"]']
    lines[150] = json.dumps({"id": "u2028", "text": "Oslo\u2028Bergen"}, ensure_ascii=False).encode()
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_jsonl_with_bad_rows_equals_predict_without_ray(local_ray, tiny_roberta_dir, tmp_path):
    source = mixed_jsonl(tmp_path / "mixed.jsonl")
    model = ["predict", "--model", str(tiny_roberta_dir), "-i", str(source)]
    local_output = invoke(*model, "-o", str(tmp_path / "local.jsonl"), exit_code=1)
    ray_output = invoke(*model, "-o", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--concurrency", "2",
                        exit_code=1)  # fmt: skip

    rows = read_jsonl(tmp_path / "ray.jsonl")
    assert len(rows) == 204  # every non-blank line, the bad ones included
    assert [r["error"] for r in rows if "error" in r] == [
        f'{source}:11: expected an object with a "text" string',
        f"{source}:12: not valid JSON (Expecting value)",
        f"{source}:14: not UTF-8 text (invalid start byte at byte 15 of the line)",
        f'{source}:102: expected an object with a "text" string',
    ]
    assert rows[10] == {"id": "bad-number", "entities": None, "error": rows[10]["error"]}  # no "text"
    assert rows[149]["text"] == "Oslo\u2028Bergen"  # line 151 is one record: lines end at "\n" only
    assert rows == read_jsonl(tmp_path / "local.jsonl")  # row for row, in input order, errors alike
    assert any(r.get("entities") for r in rows)  # the comparison is not of empty lists
    for output in (local_output, ray_output):
        assert "wrote 204 texts" in output and "4 of 204 texts failed" in output


def test_when_strict_then_both_engines_stop_at_the_first_bad_row_before_loading(tiny_roberta_dir, tmp_path):
    source = mixed_jsonl(tmp_path / "mixed.jsonl")
    for engine in ("local", "ray"):
        target = tmp_path / f"{engine}.jsonl"
        output = invoke("predict", "--model", str(tiny_roberta_dir), "-i", str(source), "-o", str(target),
                        "--engine", engine, "--strict", exit_code=1)  # fmt: skip
        assert f'{source}:11: expected an object with a "text" string' in output
        assert not target.exists() and "Traceback" not in output


def test_parquet_with_onnx_equals_predict_without_ray(local_ray, tiny_onnx_dir, tmp_path):
    all_texts = texts()
    records = [{"id": i, "text": t} for i, t in enumerate(all_texts)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    table = pa.table({"id": list(range(len(all_texts) + 1)), "text": [*all_texts, None]})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=64)

    model = ["--model", str(tiny_onnx_dir), "--backend", "onnx"]
    invoke("predict", *model, "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "local.jsonl"))
    files = ["-i", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet")]
    output = invoke("predict", *model, *files, "--engine", "ray", "--batch-size", "16", exit_code=1)

    out = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["id"] for r in out] == list(range(len(all_texts) + 1))
    error = f'{tmp_path / "in.parquet"}: row 201: expected an object with a "text" string'
    assert out[-1]["entities"] is None and out[-1]["error"] == error
    assert f'1 of 201 texts failed (their rows have "error"); the first: {error}' in output
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
