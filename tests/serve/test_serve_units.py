"""Settings from the environment, the micro-batcher, JSON logs, and the serve CLI's argument errors."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from loraner.cli import app
from loraner.errors import ConfigError
from loraner.serve.batcher import MicroBatcher
from loraner.serve.logs import JsonFormatter, safe_traceback
from loraner.serve.service import _without_path
from loraner.serve.settings import ServeSettings
from loraner.types import Entity


def set_env(monkeypatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_settings_read_environment_and_overrides_win(monkeypatch):
    env = {
        "LORANER_MODEL": "/models/x",
        "LORANER_BACKEND": "onnx",
        "LORANER_MAX_TEXT_CHARS": "500",
        "LORANER_MICROBATCH_MS": "2.5",
        "LORANER_THREADS": "",  # empty means unset
        "LORANER_LOG_JSON": "false",
        "LORANER_MAX_BATCH_TOKENS": "256",
        "LORANER_WORD_SPLIT": "conll",
    }
    set_env(monkeypatch, env)
    s = ServeSettings.from_env(port=9000, max_batch=None)
    assert (s.max_batch_tokens, s.word_split) == (256, "conll")
    assert (s.model, s.backend, s.max_text_chars, s.microbatch_ms) == ("/models/x", "onnx", 500, 2.5)
    assert (s.threads, s.port, s.max_batch, s.log_json) == (None, 9000, 64, False)
    assert ServeSettings.from_env(backend="torch").backend == "torch"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LORANER_MAX_BATCH": "lots"}, "LORANER_MAX_BATCH"),
        ({"LORANER_BACKEND": "tensorflow"}, "LORANER_BACKEND"),
        ({"LORANER_CONCURRENCY": "0"}, "LORANER_CONCURRENCY"),
        ({"LORANER_WORD_SPLIT": "spaces"}, "LORANER_WORD_SPLIT"),
        ({"LORANER_MAX_BATCH_TOKENS": "0"}, "LORANER_MAX_BATCH_TOKENS"),
        ({"LORANER_LOG_LEVEL": "verbose"}, "LORANER_LOG_LEVEL"),
        ({"LORANER_O_THRESHOLD": "1.5"}, "LORANER_O_THRESHOLD"),
    ],
)
def test_when_environment_value_is_bad_then_error_names_the_variable(monkeypatch, env, message):
    set_env(monkeypatch, env)
    with pytest.raises(ConfigError, match=message):
        ServeSettings.from_env()


def test_default_factory_passes_every_predictor_setting(monkeypatch):
    from loraner.inference import NERPredictor
    from loraner.serve.service import default_predictor_factory

    seen = {}

    class Loaded:
        def check(self):
            seen["checked"] = True

    def load(path, **kw):
        seen.update(kw, path=path)
        return Loaded()

    monkeypatch.setattr(NERPredictor, "from_pretrained", load)
    settings = ServeSettings(model="/m", max_batch_tokens=1024, word_split="tokenizer", o_threshold=0.9)
    default_predictor_factory(settings)
    assert (seen["path"], seen["max_batch_tokens"], seen["word_split"], seen["o_threshold"]) == (
        "/m",
        1024,
        "tokenizer",
        0.9,
    )
    assert seen["checked"]  # the dry run happens before the service calls itself ready


def test_default_factory_gives_a_base_with_adapters_its_settings(monkeypatch):
    from loraner.inference.adapters import MultiAdapterPredictor
    from loraner.serve.service import default_predictor_factory

    seen = {}

    def load(base, adapters, **kw):
        seen.update(kw, base=base, adapters=adapters)
        return "loaded"

    monkeypatch.setattr(MultiAdapterPredictor, "from_pretrained", load)
    settings = ServeSettings(
        base="/b",
        adapter=["phi=/a/phi"],
        default_adapter="phi",
        max_loaded_adapters=2,
        base_quantization="int8",
        dtype="fp32",
        threads=3,
        batch_size=4,
        o_threshold=0.9,
    )
    assert default_predictor_factory(settings) == "loaded"
    assert seen == {
        "base": "/b",
        "adapters": {"phi": "/a/phi"},
        "default": "phi",
        "max_loaded": 2,
        "quantization": "int8",
        "device": "cpu",
        "dtype": "fp32",
        "threads": 3,
        "batch_size": 4,
        "max_batch_tokens": settings.max_batch_tokens,
        "aggregation": settings.aggregation,
        "o_threshold": 0.9,
        "backend": settings.backend,
    }
    # Unset, the base quantization is the backend's own (an ONNX base graph is as it was exported).
    unset = ServeSettings(base="/b", adapter=["phi=/a/phi"])
    assert default_predictor_factory(unset) == "loaded"
    assert seen["quantization"] is None


def run_batches(batcher_kwargs, texts, fail=False):
    calls = []

    async def run_batch(batch, adapters):
        assert len(adapters) == len(batch)
        calls.append(list(batch))
        await asyncio.sleep(0)
        if fail:
            raise RuntimeError("model crashed")
        return [[Entity("X", t, 0, len(t))] for t in batch]

    async def main():
        batcher = MicroBatcher(run_batch, **batcher_kwargs)
        results = await asyncio.gather(*(batcher.submit(t) for t in texts), return_exceptions=True)
        await batcher.aclose()
        return results

    return asyncio.run(main()), calls


def test_microbatcher_groups_concurrent_submissions_and_keeps_order():
    results, calls = run_batches({"max_wait_s": 0.05, "max_items": 10}, ["a", "bb", "ccc"])
    assert calls == [["a", "bb", "ccc"]]
    assert [r[0].text for r in results] == ["a", "bb", "ccc"]


def test_microbatcher_flushes_at_max_items():
    _, calls = run_batches({"max_wait_s": 0.2, "max_items": 2}, ["a", "b", "c", "d", "e"])
    assert calls[:2] == [["a", "b"], ["c", "d"]] and calls[-1] == ["e"]


def test_microbatcher_passes_errors_to_every_waiter():
    results, _ = run_batches({"max_wait_s": 0.01, "max_items": 10}, ["a", "b"], fail=True)
    assert all(isinstance(r, RuntimeError) for r in results)


def test_json_formatter_emits_extras_and_safe_traceback_drops_the_message():
    record = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": "request", "status": 200})
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "request" and line["status"] == 200 and line["level"] == "info"
    request_text = "patient Kari Nordmann"
    try:
        raise ValueError(f"cannot parse {request_text}")  # messages may quote input; frames do not
    except ValueError as exc:
        text = safe_traceback(exc)
    assert "ValueError" in text and "test_serve_units.py" in text and "Kari" not in text


def test_serve_command_without_model_is_a_readable_error(monkeypatch):
    monkeypatch.delenv("LORANER_MODEL", raising=False)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 1 and "no model" in result.output
    missing = CliRunner().invoke(app, ["serve", "--model", "/nonexistent/dir"])
    assert missing.exit_code == 1 and "model directory not found" in missing.output


def test_microbatcher_when_one_text_fails_then_only_its_waiter_gets_the_error():
    async def run_batch(batch, adapters):
        await asyncio.sleep(0)
        if "bad" in batch:
            raise RuntimeError("model crashed")
        return [[Entity("X", t, 0, len(t))] for t in batch]

    async def main():
        batcher = MicroBatcher(run_batch, max_wait_s=0.05, max_items=10)
        results = await asyncio.gather(
            *(batcher.submit(t) for t in ["a", "bad", "c"]), return_exceptions=True
        )
        await batcher.aclose()
        return results

    a, bad, c = asyncio.run(main())
    assert isinstance(bad, RuntimeError)
    assert a[0].text == "a" and c[0].text == "c"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # a file inside the mount keeps its name; the folder itself is named by its role
        (
            "/model/model.onnx: not readable (chmod -R a+rX /model)",
            "model.onnx: not readable (chmod -R a+rX the model directory)",
        ),
        (
            "/model: no model in /model (the directory is empty)",
            "the model directory: no model in the model directory (the directory is empty)",
        ),
        ("/models/x: model directory not found", "/models/x: model directory not found"),  # another path
    ],
)
def test_load_errors_shown_to_clients_hide_the_mount_path_but_keep_file_names(message, expected):
    assert _without_path(message, "/model") == expected


LIBRARY_NOISE = """
import logging, warnings
from loraner.serve.logs import configure_logging
configure_logging("info")
from transformers.utils import logging as hf_logging
hf_logging.get_logger("transformers.modeling_utils").warning("a load report")
warnings.warn("a library's UserWarning")
from transformers.utils.logging import tqdm
for _ in tqdm(range(3), desc="Loading weights"):
    pass
"""


def test_library_warnings_and_progress_bars_become_json_log_lines():
    proc = subprocess.run([sys.executable, "-c", LIBRARY_NOISE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(r["msg"] == "a load report" and r["logger"].startswith("transformers") for r in records)
    assert any("UserWarning" in r["msg"] for r in records)
    assert not any("Loading weights" in line for line in lines)
