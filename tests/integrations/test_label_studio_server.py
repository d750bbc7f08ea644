"""A real Label Studio server, end to end: tasks from ``loraner predict --output-format label-studio``
imported into a project made with label-studio-sdk, annotations added through its API, ``loraner serve
--label-studio`` connected as the project's ML backend (Basic Authentication with an API key) and asked
for predictions by Label Studio itself, and the project's JSON export read back by ``data.format:
label-studio`` with every span's offsets as predicted.

Label Studio's pinned dependencies clash with loraner's, so it lives in its own venv (``make
label-studio-env`` makes ``.label-studio-venv``; ``make test-label-studio``, run by ``.ci/run``, runs this
file with ``LORANER_LABEL_STUDIO_VENV`` pointing at it). Without that variable the test is skipped. Its
first start migrates a new SQLite database: about two minutes on two cores.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from loraner.cli import app
from loraner.data import load_splits
from loraner.data.labelstudio import read_label_studio_file
from loraner.inference import NERPredictor
from loraner.settings import DataConfig

VENV = os.environ.get("LORANER_LABEL_STUDIO_VENV")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not VENV or not (Path(VENV) / "bin" / "label-studio").exists(),
        reason="set LORANER_LABEL_STUDIO_VENV to a venv with label-studio (make test-label-studio)",
    ),
]
DRIVER = Path(__file__).with_name("label_studio_driver.py")
TOKEN = "0123456789abcdef0123456789abcdef01234567"
KEY = "ls-backend-key-0123456789"
TEXTS = [
    "Kari Nordmann bor i Tromsø og jobber i Oslo.",
    "José Müller 😀 flew to Bergen with Anne Hansen.",
    "Ola og Per møttes i Trondheim i går.",
]
BARE = ["Anne Hansen reiste fra Bodø til Oslo.", "Emoji 😀 før Kari i Tromsø."]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} not up after {timeout}s: {log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("label-studio")
    port = _free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        # The ML backend is on this machine: Label Studio refuses loopback URLs unless told otherwise.
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
        "USE_DEFAULT_BANNED_SUBNETS": "false",
        "SENTRY_DSN": "",
    }
    env.pop("HOST", None)
    log = data / "server.log"
    command = [
        str(Path(VENV) / "bin" / "label-studio"),  # type: ignore[arg-type]
        "start",
        "--no-browser",
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--username",
        "admin@example.org",
        "--password",
        "admin-password-123",
        "--user-token",
        TOKEN,
        "--enable-legacy-api-token",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/health", process, 600, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def backend(tiny_roberta_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("backend") / "serve.log"
    env = {**os.environ, "LORANER_API_KEYS": KEY}
    command = [sys.executable, "-m", "loraner", "serve", "-m", str(tiny_roberta_dir), "--label-studio"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(f"http://127.0.0.1:{port}/ready", process, 300, log)
        yield f"http://127.0.0.1:{port}/label-studio"
    finally:
        _stop(process)


def test_predict_label_studio_export_read_round_trip_with_the_ml_backend(
    backend, label_studio, tiny_roberta_dir, tmp_path
):
    runner = CliRunner()
    config = tmp_path / "config.xml"
    made = runner.invoke(app, ["label-studio", "config", "-m", str(tiny_roberta_dir)])
    config.write_text(made.stdout, encoding="utf-8")
    source, tasks = tmp_path / "texts.jsonl", tmp_path / "tasks.jsonl"
    source.write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in TEXTS), encoding="utf-8"
    )
    args = ["predict", "-m", str(tiny_roberta_dir), "-i", str(source), "-o", str(tasks)]
    result = runner.invoke(app, [*args, "--output-format", "label-studio", "--label-config", str(config)])
    assert result.exit_code == 0, result.output
    predicted = [json.loads(line) for line in tasks.read_text(encoding="utf-8").splitlines()]
    regions = [task["predictions"][0]["result"] for task in predicted]
    assert len(regions[0]) >= 2, "the revised annotation drops a region: the first text needs two"

    export = tmp_path / "export.json"
    plan = {
        "url": label_studio,
        "token": TOKEN,
        "label_config": config.read_text(encoding="utf-8"),
        "tasks": str(tasks),
        "bare_texts": BARE,
        "revise": 0,
        "cancel": 1,
        "backend_url": backend,
        "backend_user": "label-studio",
        "backend_password": KEY,
        "export": str(export),
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    driver = subprocess.run(
        [str(Path(VENV) / "bin" / "python"), str(DRIVER), str(tmp_path / "plan.json")],  # type: ignore[arg-type]
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert driver.returncode == 0, driver.stderr[-3000:]
    report = json.loads(driver.stdout.strip().splitlines()[-1])
    if os.environ.get("LORANER_SAVE_LABEL_STUDIO_EXPORT"):  # refreshes the fixture the fast tests read
        shutil.copy(export, os.environ["LORANER_SAVE_LABEL_STUDIO_EXPORT"])

    # Label Studio connected to the backend, learnt its version and stored its predictions as given.
    predictor = NERPredictor.from_pretrained(tiny_roberta_dir)
    assert report["backend"]["model_version"] == predictor.version
    for text, entities in zip(BARE, predictor.predict_batch(BARE), strict=True):
        (prediction,) = report["predicted"][text]
        assert prediction["model_version"] == predictor.version
        assert [
            (r["value"]["start"], r["value"]["end"], r["value"]["labels"]) for r in prediction["result"]
        ] == [(e.start, e.end, [e.type]) for e in entities]

    # The export read back: every accepted span with its offsets as predicted; the newer annotation of
    # task 0 wins; task 1's newest is cancelled, so its accepted one is read; bare tasks are skipped by id.
    examples, read = read_label_studio_file(export)
    spans = {ex.text: [(s.start, s.end, s.label) for s in ex.spans] for ex in examples}
    expected = {
        text: [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in result]
        for text, result in zip(TEXTS, regions, strict=True)
    }
    expected[TEXTS[0]] = expected[TEXTS[0]][:-1]
    assert spans == expected
    exported = json.loads(export.read_text(encoding="utf-8"))
    bare_ids = sorted(task["id"] for task in exported if task["data"]["text"] in BARE)
    assert read.skipped == {"no annotation that was not cancelled": bare_ids}
    # ...and as training reads it (data.format: label-studio, the export split by data.label_studio.holdout)
    cfg = DataConfig.model_validate(
        {"format": "label-studio", "path": str(export), "label_studio": {"holdout": {"test": 0.3}}}
    )
    with pytest.warns(UserWarning, match="skipped"):
        splits = load_splits(cfg)
    assert sorted(ex.text for split in splits.values() for ex in split) == sorted(TEXTS)
