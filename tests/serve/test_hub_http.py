"""A hub id as the served model: downloaded through ``snapshot_download`` (the stand-in of conftest.py
serves the tiny ONNX model), then answered over real HTTP like a local directory."""

from __future__ import annotations

import httpx
from serve_helpers import running_server, wait_ready

from loraner.inference import NERPredictor
from loraner.serve import ServeSettings, create_app

TEXT = "José Müller flew from Oslo to 東京."


def test_serve_loads_a_hub_model_and_answers_over_http(fake_hub, tiny_onnx_dir):
    hub = fake_hub({"org/tiny-onnx": tiny_onnx_dir})
    with running_server(create_app(ServeSettings(model="org/tiny-onnx@main", threads=1))) as url:
        wait_ready(url)
        answer = httpx.post(f"{url}/predict", json={"text": TEXT}).json()
    local = NERPredictor.from_pretrained(tiny_onnx_dir, threads=1).predict(TEXT)
    assert answer["entities"] == [e.to_dict() for e in local]
    assert [(repo, kw["revision"]) for repo, kw in hub.calls] == [("org/tiny-onnx", "main")]
