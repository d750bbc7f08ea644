"""Start-up, readiness, load failures, concurrency, micro-batching, and the real tiny model over HTTP."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from serve_helpers import FakePredictor, running_server, wait_ready

from loraner.errors import ModelError
from loraner.serve import ServeSettings, create_app


def test_creating_the_app_loads_nothing():
    calls = []
    create_app(ServeSettings(), lambda s: calls.append(s) or FakePredictor())
    assert calls == []  # the model loads in the lifespan, not at import or construction


def test_when_model_is_loading_then_live_but_not_ready():
    gate = threading.Event()

    def slow_factory(settings):
        gate.wait(30)
        return FakePredictor()

    with running_server(create_app(ServeSettings(), slow_factory)) as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok", "ready": False}
        ready = httpx.get(f"{url}/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "loading"
        info = httpx.get(f"{url}/").json()
        assert info["ready"] is False and info["model"] is None
        early = httpx.post(f"{url}/predict", json={"text": "Oslo"})
        assert early.status_code == 503 and early.headers["retry-after"]
        assert "model is not ready" in early.json()["detail"]
        assert "loraner_model_ready 0.0" in httpx.get(f"{url}/metrics").text
        gate.set()
        wait_ready(url, timeout=10)
        assert httpx.post(f"{url}/predict", json={"text": "Oslo"}).json()["count"] == 1


def test_when_model_fails_to_load_then_health_and_ready_say_so():
    def broken(settings):
        raise ModelError("/models/x: model directory not found")

    with running_server(create_app(ServeSettings(), broken)) as url:
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/health").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        health = httpx.get(f"{url}/health")
        assert health.status_code == 503 and health.json()["status"] == "failed"
        assert httpx.get(f"{url}/ready").json()["status"] == "failed"
        detail = httpx.post(f"{url}/predict", json={"text": "Oslo"}).json()["detail"]
        assert "model directory not found" in detail


def test_when_the_model_mount_is_empty_then_the_error_says_no_model(tmp_path):
    empty = tmp_path / "model"  # what an image started without `-v DIR:/model` sees
    empty.mkdir()
    settings = ServeSettings(model=str(empty), backend="onnx", deid=False)
    with running_server(create_app(settings)) as url:
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/ready").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{url}/ready").json()["status"] == "failed"
        detail = httpx.post(f"{url}/predict", json={"text": "Oslo"}).json()["detail"]
        assert "no model in" in detail and "empty" in detail and "label" not in detail


def gather_posts(url: str, texts: list[str], path: str = "/predict") -> tuple[list[httpx.Response], float]:
    async def main():
        async with httpx.AsyncClient(base_url=url, timeout=30) as ac:
            started = time.perf_counter()
            responses = await asyncio.gather(*(ac.post(path, json={"text": t}) for t in texts))
            return responses, time.perf_counter() - started

    return asyncio.run(main())


def test_slow_inference_runs_in_parallel_threads_and_never_blocks_the_event_loop():
    predictor = FakePredictor(delay=0.3)
    settings = ServeSettings(concurrency=4)
    with running_server(create_app(settings, lambda s: predictor)) as url:
        wait_ready(url)
        health_latency = []

        def probe():
            time.sleep(0.1)  # while the slow requests are in flight
            started = time.perf_counter()
            httpx.get(f"{url}/health")
            health_latency.append(time.perf_counter() - started)

        prober = threading.Thread(target=probe)
        prober.start()
        responses, elapsed = gather_posts(url, [f"Oslo {i}" for i in range(8)])
        prober.join()
    assert [r.status_code for r in responses] == [200] * 8
    assert elapsed < 8 * 0.3 * 0.6, f"8 x 0.3 s requests took {elapsed:.2f}s: serialised"
    assert health_latency[0] < 0.25, "the event loop was blocked by inference"
    assert "MainThread" not in predictor.threads and "uvicorn-test" not in predictor.threads


def test_when_microbatching_then_concurrent_singles_share_one_batch():
    predictor = FakePredictor(delay=0.05)
    settings = ServeSettings(microbatch_ms=150, microbatch_max=16, concurrency=1)
    with running_server(create_app(settings, lambda s: predictor)) as url:
        wait_ready(url)
        texts = ["Oslo", "Kari Nordmann", "nothing", "Bergen og Oslo", "São Paulo", "x"]
        responses, _ = gather_posts(url, texts)
    assert [r.json()["count"] for r in responses] == [1, 1, 0, 2, 1, 0]  # each got its own answer
    assert max(predictor.batch_sizes) > 1, predictor.batch_sizes


@pytest.fixture(scope="module")
def real_server(tiny_onnx_dir):
    settings = ServeSettings(model=str(tiny_onnx_dir), threads=1, microbatch_ms=5)
    with running_server(create_app(settings)) as url:
        wait_ready(url)
        yield url


def test_real_tiny_model_over_http(real_server):
    info = httpx.get(f"{real_server}/").json()
    assert info["model"]["backend"] == "onnx" and info["model"]["types"] == ["PER", "LOC"]
    texts = ["José Müller 😀 bor i 東京.", "Zoë " * 300]
    singles = [httpx.post(f"{real_server}/predict", json={"text": t}).json() for t in texts]
    batch = httpx.post(f"{real_server}/predict/batch", json={"texts": texts}).json()
    assert [r["entities"] for r in batch["results"]] == [s["entities"] for s in singles]
    for text, single in zip(texts, singles, strict=True):
        assert single["count"] == len(single["entities"])
        for e in single["entities"]:
            assert e["text"] == text[e["start"] : e["end"]]
