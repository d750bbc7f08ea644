"""Adapters trained by different shipped presets served together over real HTTP (the real `loraner
serve` process, as a user starts it), and an adapter that cannot be served answered with a 503 naming it
and the reason, never a 500."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from serve_helpers import assert_a_broken_adapter_is_a_503, running_server, wait_process_ready, wait_ready

from loraner.inference import NERPredictor
from loraner.serve import ServeSettings, create_app

TEXTS = [
    "Kari Nordmann lives in Tromsø with friends.",
    "Ola Hansen flew from Bergen to Oslo with NRK.",
    "Yesterday Google hired Kari Nordmann in Trondheim, far from Oslo.",
]


@pytest.fixture(scope="module")
def runs(preset_adapter_runs, tiny_adapter_runs) -> dict[str, Path]:
    return {**preset_adapter_runs, "fewnerd": tiny_adapter_runs["places"]}


@pytest.fixture(scope="module")
def merged(runs) -> dict[str, NERPredictor]:
    return {name: NERPredictor.from_pretrained(run / "merged") for name, run in runs.items()}


def spans(entities) -> list[tuple[str, int, int]]:
    return [
        (e["type"], e["start"], e["end"]) if isinstance(e, dict) else (e.type, e.start, e.end)
        for e in entities
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_loraner_serve_answers_each_presets_adapter_alone_and_in_mixed_batches(
    tiny_roberta_dir, runs, merged
):
    port = free_port()
    command = [sys.executable, "-m", "loraner", "serve", "--base", str(tiny_roberta_dir), "--port", str(port)]
    for name, run in runs.items():
        command += ["--adapter", f"{name}={run / 'adapter'}"]
    command += ["--threads", "1", "--log-level", "warning"]
    server = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_process_ready(url, server, timeout=90)
        with httpx.Client(base_url=url, timeout=60) as client:
            assert sorted(a["name"] for a in client.get("/adapters").json()["adapters"]) == sorted(runs)
            for name in runs:  # each adapter's first request loads it onto the shared model
                for text in TEXTS:
                    response = client.post("/predict", json={"text": text, "adapter": name})
                    assert response.status_code == 200, response.text
                    assert spans(response.json()["entities"]) == spans(merged[name].predict(text)), name
            names = [list(runs)[i % len(runs)] for i in range(len(TEXTS) * len(runs))]
            texts = [TEXTS[i % len(TEXTS)] for i in range(len(names))]
            batch = client.post("/predict/batch", json={"texts": texts, "adapters": names})
            assert batch.status_code == 200, batch.text
            want = [spans(merged[n].predict(t)) for t, n in zip(texts, names, strict=True)]
            assert [spans(r["entities"]) for r in batch.json()["results"]] == want
            assert any(want), "no adapter found anything: the comparison would hold for any output"
            deid = client.post("/deidentify", json={"text": TEXTS[0], "adapter": "clinical"})
            assert deid.status_code == 200, deid.text
            # No --default-adapter: a request must name one, as the schema says (required), or 422.
            unnamed = client.post("/predict", json={"text": TEXTS[0]})
            assert unnamed.status_code == 422 and unnamed.json()["available"] == list(runs)
            assert (
                "adapter"
                in client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]["required"]
            )
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_an_adapter_that_cannot_join_is_refused_at_start_up_by_name_and_reason(
    tmp_path, tiny_roberta_dir, runs
):
    dora = shutil.copytree(runs["fewnerd"] / "adapter", tmp_path / "dora")
    config = dora / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "use_dora": True}))
    settings = ServeSettings(
        base=str(tiny_roberta_dir), adapter=[f"ok={runs['clinical'] / 'adapter'}", f"dora={dora}"]
    )
    with running_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(600):
            ready = client.get("/ready")
            if ready.json()["status"] != "loading":
                break
            time.sleep(0.1)
        assert ready.status_code == 503 and ready.json()["status"] == "failed"
        answer = client.post("/predict", json={"text": TEXTS[0], "adapter": "ok"})
        assert answer.status_code == 503
        detail = answer.json()["detail"]
        assert "adapter 'dora' cannot be served with the others: a DoRA adapter" in detail
        assert str(tmp_path) not in detail  # clients are not told the server's paths


def test_an_adapter_that_fails_at_first_load_is_a_503_naming_it_and_the_others_still_answer(
    tmp_path, tiny_roberta_dir, runs, merged
):
    late = shutil.copytree(runs["all_linear"] / "adapter", tmp_path / "late")
    settings = ServeSettings(
        base=str(tiny_roberta_dir), adapter=[f"late={late}", f"clinical={runs['clinical'] / 'adapter'}"]
    )
    with running_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(url)
        weights = late / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])  # replaced by a broken copy after start-up
        fine = assert_a_broken_adapter_is_a_503(
            client, TEXTS, "late", "clinical", "weights cannot be read", str(tmp_path)
        )
        assert spans(fine.json()["entities"]) == spans(merged["clinical"].predict(TEXTS[0]))


def test_an_int8_base_serves_the_presets_adapters_in_mixed_batches(tiny_roberta_dir, runs):
    from loraner.inference.adapters import MultiAdapterPredictor

    sources = {name: run / "adapter" for name, run in runs.items()}
    settings = ServeSettings(
        base=str(tiny_roberta_dir),
        adapter=[f"{name}={path}" for name, path in sources.items()],
        base_quantization="int8",
        max_loaded_adapters=2,  # three adapters: evictions and reloads onto the int8 layers too
    )
    local = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), sources, quantization="int8")
    names = [list(runs)[i % len(runs)] for i in range(len(TEXTS) * len(runs))]
    texts = [TEXTS[i % len(TEXTS)] for i in range(len(names))]
    with running_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        wait_ready(url)
        assert "(int8)" in client.get("/").json()["model"]["name"]
        for _ in range(2):
            batch = client.post("/predict/batch", json={"texts": texts, "adapters": names})
            assert batch.status_code == 200, batch.text
            got = [spans(r["entities"]) for r in batch.json()["results"]]
            assert got == [spans(e) for e in local.predict_batch(texts, names)]
            assert any(got)
