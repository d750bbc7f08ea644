"""Work stops between forward passes when the client goes away or time runs out, with the real engines:
``NERPredictor`` (the tiny model on PyTorch) and ``MultiAdapterPredictor`` (two trained adapters, a mixed
batch). The model's forward pass is slowed (a sleep after the real pass, as a big model on a small box
would take) and counted, so the test sees how many passes ran after the stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from serve_helpers import running_server, wait_ready

from loraner.inference import NERPredictor
from loraner.inference.adapters import MultiAdapterPredictor
from loraner.serve import ServeSettings, create_app

PASS_S = 0.15  # each forward pass takes this much longer than the tiny model does
TEXTS = [f"Kari Nordmann nummer {i} bor i Bergen." for i in range(40)]  # one pass each (batch_size 1)


class SlowPasses:
    """Wraps a forward function: runs it, then sleeps ``PASS_S``; counts the passes."""

    def __init__(self, forward: Callable[..., Any]) -> None:
        self.forward = forward
        self.passes = 0
        self.lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        time.sleep(PASS_S)
        with self.lock:
            self.passes += 1
        return out


def single_model(tiny_roberta_dir, tiny_adapter_runs) -> tuple[Any, SlowPasses, dict]:
    predictor = NERPredictor.from_pretrained(tiny_roberta_dir, backend="torch", batch_size=1)
    slow = SlowPasses(predictor.backend.logits)
    predictor.backend.logits = slow
    return predictor, slow, {}


def adapters(tiny_roberta_dir, tiny_adapter_runs) -> tuple[Any, SlowPasses, dict]:
    sources = {name: run / "adapter" for name, run in tiny_adapter_runs.items()}
    predictor = MultiAdapterPredictor.from_pretrained(str(tiny_roberta_dir), sources, batch_size=1)
    slow = SlowPasses(predictor.pool.logits)
    predictor.pool.logits = slow
    names = list(sources)
    return predictor, slow, {"adapters": [names[i % 2] for i in range(len(TEXTS))]}


@pytest.fixture(params=[single_model, adapters], ids=["NERPredictor", "MultiAdapterPredictor"])
def slow_model(request, tiny_roberta_dir, tiny_adapter_runs):
    return request.param(tiny_roberta_dir, tiny_adapter_runs)


def test_when_the_request_times_out_then_the_real_engine_stops_between_passes(slow_model):
    predictor, slow, choice = slow_model
    settings = ServeSettings(request_timeout_s=1, max_batch=64)
    with running_server(create_app(settings, lambda s: predictor)) as url:
        wait_ready(url)
        slow.passes = 0
        started = time.monotonic()
        response = httpx.post(f"{url}/predict/batch", json={"texts": TEXTS, **choice}, timeout=30)
        answered_after = time.monotonic() - started
        time.sleep(3 * PASS_S)  # any pass still running would be counted by now
    assert response.status_code == 503, response.text
    assert "did not finish within the 1 s limit" in response.json()["detail"]
    assert answered_after < 1.0 + PASS_S, answered_after
    # About 1 s of passes, not the 6 s the batch needs: stopped between passes.
    assert 1 <= slow.passes <= 1.0 / PASS_S + 1, slow.passes


def test_when_the_client_goes_away_then_the_real_engine_stops_and_the_next_request_is_served(slow_model):
    predictor, slow, choice = slow_model
    settings = ServeSettings(request_timeout_s=60, max_batch=64, concurrency=1)
    with running_server(create_app(settings, lambda s: predictor)) as url:
        wait_ready(url)
        slow.passes = 0
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/predict/batch", json={"texts": TEXTS, **choice}, timeout=0.6)
        started = time.monotonic()
        one = {"text": TEXTS[0], **({"adapter": choice["adapters"][0]} if choice else {})}
        small = httpx.post(f"{url}/predict", json=one, timeout=30)
        waited = time.monotonic() - started
        time.sleep(3 * PASS_S)
    assert small.status_code == 200, small.text
    assert waited < 1.5, f"a small request waited {waited:.1f}s behind abandoned work"
    # The abandoned batch ran a few passes (until the disconnect was seen), not its 40.
    assert slow.passes < 15, slow.passes
