"""``loraner rank``: a pool ordered by the model's uncertainty, most uncertain first, near-duplicates passed
over, written as JSONL or as Label Studio tasks with pre-annotations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loraner.cli import app
from loraner.inference import NERPredictor
from loraner.inference.uncertainty import Confidence, confidence, uncertainty
from loraner.jobs.documents import Document
from loraner.jobs.rank import rank, shingles, similarity

POOL = [
    "Kari Nordmann bor i Tromsø og jobber i Oslo hos Telenor sammen med Ola.",
    "Essex 532-8 v Surrey",
    "Essex 210-4 v Surrey",  # the same template: a near-duplicate of the row above
    "Hei.",
    "José Müller 😀 flew to Bergen with Anne and Per.",
    "",
]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("Essex 532-8 v Surrey", "Essex 210-4 v Surrey", 1.0),  # digits are not what makes a text new
        ("Kari bor i Oslo", "KARI BOR I OSLO", 1.0),  # nor case
        ("Kari bor i Oslo", "Ola bor i Bergen", 1 / 5),  # one bigram of five shared
        ("", "", 1.0),  # two empty texts say the same nothing
        ("Oslo", "Bergen", 0.0),  # one word each, different
    ],
)
def test_similarity_is_the_jaccard_of_normalised_word_bigrams(a, b, expected):
    assert similarity(shingles(a), shingles(b)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("measure", "expected"),
    [
        ("sequence", 2.0),  # -log P(all words right)
        ("word-mean", 0.5),  # per word
        ("lowest-word", 0.6),  # 1 - the least sure word's confidence
    ],
)
def test_each_measure_reads_the_confidence_as_documented(measure, expected):
    assert uncertainty(Confidence(log=-2.0, words=4, lowest=0.4), measure) == pytest.approx(expected)


def test_when_ranked_then_most_uncertain_first_and_near_duplicates_passed_over(tiny_roberta_dir):
    predictor = NERPredictor.from_pretrained(tiny_roberta_dir)
    documents = [Document({"id": i, "text": t}, t, id=i) for i, t in enumerate(POOL)]
    ranking = rank(predictor, documents, top=len(POOL))
    analyses = predictor.analyze_batch(POOL)
    expected = [-confidence(t, a, predictor.aggregation).log for t, a in zip(POOL, analyses, strict=True)]
    picked = [r.index for r in ranking.top]
    assert [r.uncertainty for r in ranking.top] == pytest.approx([expected[i] for i in picked])
    assert [r.uncertainty for r in ranking.top] == sorted((r.uncertainty for r in ranking.top), reverse=True)
    # one of the two Essex rows is taken, the other passed over as its near-duplicate
    assert len({1, 2} & set(picked)) == 1 and len(picked) == len(POOL) - 1
    (passed_over, twin) = ranking.duplicates[0]
    assert {passed_over, twin} == {1, 2}
    assert ranking.summary()["near_duplicates_passed_over"] == 1
    # the longest text has the most doubtful words: sequence least-confidence puts it first
    assert picked[0] == 0
    assert (
        ranking.top[-1].index == 5
        and ranking.top[-1].uncertainty == 0.0
        and ranking.top[-1].confidence.value == 1
    )
    assert math.isclose(ranking.top[0].confidence.value, math.exp(-ranking.top[0].uncertainty))


def _pool(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "pool.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_rank_command_writes_the_top_rows_with_their_rank_and_a_summary(tiny_roberta_dir, tmp_path):
    pool = _pool(
        tmp_path,
        [json.dumps({"id": i, "text": t, "src": "x"}, ensure_ascii=False) for i, t in enumerate(POOL)],
    )
    out = tmp_path / "next.jsonl"
    args = ["rank", "-m", str(tiny_roberta_dir), "-i", str(pool), "--top", "3", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3] and rows[0]["id"] == 0 and rows[0]["src"] == "x"
    assert set(rows[0]) == {"id", "text", "src", "rank", "uncertainty", "confidence", "words", "entities"}
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert (summary["pool"], summary["picked"], summary["measure"]) == (len(POOL), 3, "sequence")


def test_rank_command_writes_label_studio_tasks_with_pre_annotations(tiny_roberta_dir, tmp_path):
    pool = _pool(tmp_path, [json.dumps({"text": t}, ensure_ascii=False) for t in POOL])
    out = tmp_path / "tasks.jsonl"
    args = ["rank", "-m", str(tiny_roberta_dir), "-i", str(pool), "-n", "2", "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--output-format", "label-studio", "--measure", "word-mean"])
    assert result.exit_code == 0, result.output
    tasks = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    version = NERPredictor.from_pretrained(tiny_roberta_dir).version
    assert len(tasks) == 2
    for task in tasks:
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == version
        for region in prediction["result"]:
            value = region["value"]
            assert value["text"] == task["data"]["text"][value["start"] : value["end"]]


def test_when_a_pool_row_is_bad_then_rank_names_its_line_before_loading_the_model(tmp_path):
    pool = _pool(tmp_path, ['{"text": "ok"}', '{"txt": "typo"}'])
    result = CliRunner().invoke(app, ["rank", "-m", str(tmp_path / "no-model"), "-i", str(pool)])
    assert result.exit_code == 1 and "pool.jsonl:2" in result.output and "Traceback" not in result.output
