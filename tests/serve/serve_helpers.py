"""A fake predictor (a gazetteer) and a real Uvicorn server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from loraner.inference.predictor import Cancelled, ModelInfo
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
    """Finds gazetteer names; sleeps ``delay`` per call and ``per_text`` per text (releasing the GIL like
    a real runtime; ``should_stop`` is asked before each text, as the engine asks before each forward
    pass) and raises an error whose message quotes the text when it sees ``BOOM`` (never to be logged)."""

    def __init__(self, delay: float = 0.0, per_text: float = 0.0) -> None:
        self.delay = delay
        self.per_text = per_text
        self.batch_sizes: list[int] = []
        self.o_thresholds: list[float | None] = []  # the cut-off each call was given
        self.threads: set[str] = set()
        self.texts_done = 0
        self.cancelled = 0
        self._lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:
        return ModelInfo("fake-ner", LABELS, "fake", 512, 64, "first", "tokenizer", types=["PER", "LOC"])

    def predict_batch(
        self, texts: Sequence[str], *, o_threshold: float | None = None, should_stop: Any = None
    ) -> list[list[Entity]]:
        with self._lock:
            self.batch_sizes.append(len(texts))
            self.o_thresholds.append(o_threshold)
            self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        for text in texts:
            if should_stop is not None and should_stop():
                with self._lock:
                    self.cancelled += 1
                raise Cancelled("stopped")
            if self.per_text:
                time.sleep(self.per_text)
            with self._lock:
                self.texts_done += 1
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


def wait_process_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """:func:`wait_ready` for a server in a subprocess: refused connections are retried while it starts,
    and a process that exits fails the wait at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, "server did not start"
        time.sleep(0.1)


def access_records(caplog: Any, request_ids: set[str], timeout: float = 5) -> dict[str, logging.LogRecord]:
    """The access-log record per request id. The server thread logs a request after its response is
    sent, so the client can see the response first: wait (briefly) until every record has arrived."""
    deadline = time.monotonic() + timeout
    while True:
        found = {
            r.request_id: r
            for r in caplog.records
            if getattr(r, "request_id", None) in request_ids and r.name == "loraner.serve.access"
        }
        if set(found) == request_ids or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


# --- demo page in a browser (Playwright is imported lazily: it is optional) ------------------------------


def open_demo(browser: Any, url: str, model_name: str = "fake-ner") -> Any:
    """A new page on ``url``/demo, once the model information has loaded. ``page.console_errors``
    collects console errors and uncaught exceptions."""
    from playwright.sync_api import expect

    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{url}/demo")
    # Locator waits, not wait_for_function: the page's CSP forbids eval, which that would need.
    expect(page.locator("#model-info")).to_contain_text(model_name)
    page.console_errors = errors
    return page


def analyze(page: Any, text: str) -> None:
    """Type ``text``, press the run button and wait for the answer."""
    from playwright.sync_api import expect

    page.fill("#text", text)
    page.click("#run")
    expect(page.locator("#run")).to_be_enabled()  # disabled while the request is in flight
    expect(page.locator("#status")).not_to_have_text("Working…")


def marks(page: Any, selector: str = "#highlighted mark.entity") -> list[tuple[str, str, str]]:
    """(highlighted text without its label, type, score) for each highlight."""
    found = page.eval_on_selector_all(
        selector, "ms => ms.map(m => [m.firstChild.textContent, m.dataset.type, m.dataset.score])"
    )
    return [tuple(m) for m in found]


# Bodies every JSON endpoint must refuse with 422 (content, headers, part of the message).
NOT_JSON_BODIES = [
    (b"{not json", {"content-type": "application/json"}, "not valid JSON"),
    (b"", {"content-type": "application/json"}, "a JSON body is required"),
    (b"text=hello", {"content-type": "application/x-www-form-urlencoded"}, "JSON object"),
]

# Single-text bodies that /predict and /deidentify both refuse with 422 (body, part of the message).
BAD_TEXT_BODIES = [
    ({"text": ""}, "text: must not be empty"),  # empty
    ({"text": " \n\t"}, "text: must not be empty"),  # whitespace only
    ({"text": 123}, "text: Input should be a valid string"),  # wrong type
    ({"text": None}, "text: Input should be a valid string"),  # null
    ({"text": ["a"]}, "text: Input should be a valid string"),  # list
    ({}, "text: Field required"),  # missing field
    ({"texts": ["a"]}, "text: Field required"),  # batch body to the single endpoint
    (["text"], "the body must be a JSON object"),  # not an object
    ({"text": "x" * (LIMITS["max_text_chars"] + 1)}, "text has 1001 characters; the limit is 1000"),
]

# Batch bodies that /predict/batch and /deidentify/batch both refuse with 422.
BAD_BATCH_BODIES = [
    ({"texts": []}, "texts: List should have at least 1 item"),  # empty list
    ({"texts": ["ok", " "]}, "texts: item 1 must not be empty"),  # blank item
    ({"texts": "abc"}, "texts: Input should be a valid list"),  # not a list
    ({"texts": ["ok", 2]}, "texts.1: Input should be a valid string"),  # wrong item type
    ({"texts": ["a"] * (LIMITS["max_batch"] + 1)}, "texts has 5 items; the limit is 4"),  # too many
    ({"texts": ["ok", "y" * 1001]}, "texts[1] has 1001 characters"),  # one too long
    ({"text": "a"}, "texts: Field required"),  # single body to the batch endpoint
]


def assert_a_broken_adapter_is_a_503(
    client: httpx.Client, texts: Sequence[str], broken: str, working: str, reason: str, hidden: str
) -> httpx.Response:
    """Requests naming ``broken`` (alone, in a mixed batch, through de-identification) answer 503 naming it
    and ``reason`` but not the server's path ``hidden``; ``working`` still answers: its response is
    returned for the caller to check."""
    for path, body in [
        ("/predict", {"text": texts[0], "adapter": broken}),
        ("/predict/batch", {"texts": texts[:3], "adapters": [working, broken, working]}),
        ("/deidentify", {"text": texts[0], "adapter": broken}),
    ]:
        response = client.post(path, json=body)
        assert response.status_code == 503, (path, response.text)
        answer = response.json()
        assert answer["adapter"] == broken and reason in answer["detail"], (path, answer)
        assert hidden not in answer["detail"]  # clients are not told the server's paths
        assert response.headers["Retry-After"]
    fine = client.post("/predict", json={"text": texts[0], "adapter": working})
    assert fine.status_code == 200, fine.text
    return fine
