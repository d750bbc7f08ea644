"""A fake predictor (a gazetteer) and a real Uvicorn server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from loraner.inference.predictor import ModelInfo
from loraner.types import Entity

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
GAZETTEER = {
    "José Müller": "PER",
    "Kari Nordmann": "PER",
    "Zoë Ødegård": "PER",
    "Oslo": "LOC",
    "Bergen": "LOC",
    "São Paulo": "LOC",
    "東京": "LOC",
}
SECRET_TRIGGER = "BOOM"
# Small limits so every 4xx path is cheap to reach.
LIMITS = {"max_text_chars": 1000, "max_batch": 4, "max_body_bytes": 20_000}


class FakePredictor:
    """Finds gazetteer names; sleeps ``delay`` per call (releasing the GIL like a real runtime) and
    raises an error whose message quotes the text when it sees ``BOOM`` (it must never be logged)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batch_sizes: list[int] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:
        return ModelInfo("fake-ner", LABELS, "fake", 512, 64, "first", types=["PER", "LOC"])

    def predict_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        with self._lock:
            self.batch_sizes.append(len(texts))
            self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        for text in texts:
            if SECRET_TRIGGER in text:
                raise RuntimeError(f"cannot handle {text!r}")
        return [find_entities(t) for t in texts]


def find_entities(text: str) -> list[Entity]:
    found = []
    for name, type_ in GAZETTEER.items():
        at = text.find(name)
        while at >= 0:
            found.append(Entity(type_, name, at, at + len(name), 0.9))
            at = text.find(name, at + len(name))
    return sorted(found, key=lambda e: e.start)


@contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with Uvicorn on a free loopback port; yields the base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s")
