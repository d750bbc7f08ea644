"""API keys through a real Uvicorn server: which routes need a key, the 401s, the OpenAPI security
scheme, bad key configurations, and ``loraner serve`` with keys never writing one to its log."""

from __future__ import annotations

import hmac
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helpers import LIMITS, FakePredictor, running_server, wait_process_ready, wait_ready

from loraner.errors import ConfigError
from loraner.serve import ServeSettings, create_app
from loraner.serve.auth import MIN_KEY_CHARS, key_matches, load_api_keys

KEY = "env-key-0123456789abcdef"  # from LORANER_API_KEYS
FILE_KEY = "file-key-fedcba9876543210"  # from the keys file
WRONG = "not-a-key-0123456789abcdef"
TEXT = {"text": "Kari Nordmann bor i Oslo."}

# (method, path, body) of every route that needs a key when keys are on (with the default settings).
PROTECTED = [
    ("GET", "/", None),
    ("POST", "/predict", TEXT),
    ("POST", "/predict/batch", {"texts": ["Oslo", "Bergen"]}),
    ("POST", "/deidentify", TEXT),
    ("POST", "/deidentify/batch", {"texts": ["Oslo"]}),
    ("GET", "/adapters", None),
    ("GET", "/metrics", None),  # protect_metrics defaults to true
]
# Open whatever the keys: the probes, and (protect_demo defaults to false) the pages and their files.
OPEN = [
    "/health",
    "/ready",
    "/demo",
    "/docs",
    "/openapi.json",
    "/static/demo.js",
    "/docs-static/swagger-ui.css",
]
PAGES = ["/demo", "/docs", "/openapi.json"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keys_file(tmp: Path, text: str) -> Path:
    path = tmp / "keys.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = keys_file(tmp_path_factory.mktemp("keys"), f"# the demo key\n\n  {FILE_KEY}  \n")
    settings = ServeSettings(**LIMITS, api_keys=KEY, api_keys_file=path)
    with running_server(create_app(settings, lambda s: FakePredictor())) as url:
        wait_ready(url)
        yield url


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_when_no_key_is_sent_then_401_with_www_authenticate_as_json(keyed_server, method, path, body):
    response = httpx.request(method, f"{keyed_server}{path}", json=body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    data = response.json()
    assert set(data) == {"detail", "request_id"} and "Authorization: Bearer" in data["detail"]
    assert data["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "headers",
    [
        bearer(WRONG),  # a key the service does not have
        bearer(KEY[:-1]),  # one character short
        bearer(KEY + "x"),  # one character more
        {"Authorization": f"Basic {KEY}"},  # the right key in another scheme
        {"Authorization": "Bearer"},  # the scheme without a key
        {"X-API-Key": KEY},  # another header
    ],
)
def test_when_the_key_is_wrong_then_401(keyed_server, headers):
    response = httpx.post(f"{keyed_server}/predict", json=TEXT, headers=headers)
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    assert KEY not in response.text and WRONG not in response.text


def test_when_a_bad_body_comes_without_a_key_then_401_not_422(keyed_server):
    # The key is checked before the body: an unauthenticated caller learns nothing about validation.
    response = httpx.post(f"{keyed_server}/predict", json={"text": ""}, headers=bearer(WRONG))
    assert (
        response.status_code == 401 and response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    )


@pytest.mark.parametrize("key", [KEY, FILE_KEY])  # from the setting, from the file
@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_either_configured_key_opens_every_route(keyed_server, key, method, path, body):
    response = httpx.request(method, f"{keyed_server}{path}", json=body, headers=bearer(key))
    assert response.status_code == 200, response.text


def test_the_answer_with_a_key_is_the_same_answer(keyed_server, fake_server):
    keyed = httpx.post(f"{keyed_server}/predict", json=TEXT, headers=bearer(KEY)).json()
    open_ = httpx.post(f"{fake_server}/predict", json=TEXT).json()
    assert keyed["entities"] == open_["entities"] and [e["text"] for e in keyed["entities"]] == [
        "Kari Nordmann",
        "Oslo",
    ]


@pytest.mark.parametrize("path", OPEN)
def test_probes_and_pages_stay_open(keyed_server, path):
    assert httpx.get(f"{keyed_server}{path}").status_code == 200


def test_openapi_declares_the_bearer_scheme_on_api_routes_only(keyed_server):
    schema = httpx.get(f"{keyed_server}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key of this service (LORANER_API_KEYS / LORANER_API_KEYS_FILE)",
    }
    for path, method in [
        ("/", "get"),
        ("/predict", "post"),
        ("/deidentify/batch", "post"),
        ("/adapters", "get"),
    ]:
        operation = schema["paths"][path][method]
        assert operation["security"] == [{"apiKey": []}], path
        assert "401" in operation["responses"], path
    for probe in ("/health", "/ready"):
        assert "security" not in schema["paths"][probe]["get"]


def test_without_keys_nothing_is_protected_and_the_schema_has_no_scheme(client):
    assert client.get("/metrics").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})
    assert "401" not in schema["paths"]["/predict"]["post"]["responses"]


def test_protect_settings_move_metrics_and_pages():
    settings = ServeSettings(api_keys=KEY, protect_metrics=False, protect_demo=True)
    with running_server(create_app(settings, lambda s: FakePredictor())) as url:
        wait_ready(url)
        assert httpx.get(f"{url}/metrics").status_code == 200
        for path in PAGES:
            denied = httpx.get(f"{url}{path}")
            assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer", path
            assert httpx.get(f"{url}{path}", headers=bearer(KEY)).status_code == 200, path
        # The pages' own files hold no data and stay open.
        assert httpx.get(f"{url}/static/demo.js").status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200


def test_every_key_is_compared_in_constant_time_without_early_exit(monkeypatch):
    digests = load_api_keys(ServeSettings(api_keys=f"{KEY},{FILE_KEY},{WRONG}"))
    calls = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr("loraner.serve.auth.hmac.compare_digest", counting)
    assert key_matches(KEY, digests)  # the first key matches: the other two are still compared
    assert key_matches(WRONG, digests) and not key_matches("x", digests)
    assert len(calls) == 9
    assert set(calls) == {(32, 32)}  # digests: equal lengths, whatever the key's length


@pytest.mark.parametrize(
    ("file_text", "message"),
    [
        (None, "file not found"),  # no file at all
        ("", "no keys in it"),  # empty
        ("# only a comment\n\n   \n", "no keys in it"),  # nothing but comments and blanks
        (f"{KEY}\nshort\n", f"keys.txt:2: an API key needs at least {MIN_KEY_CHARS} characters"),
        (f"# c\n{KEY} # note\n", "keys.txt:2: an API key must be printable ASCII without spaces"),
        ("nøkkel-med-æøå-0123456789\n", "keys.txt:1: an API key must be printable ASCII"),
        (b"\xff\xfe binary", "not UTF-8 text"),
    ],
)
def test_when_the_keys_file_is_bad_then_start_up_fails_naming_it(tmp_path, file_text, message):
    path = tmp_path / "keys.txt"
    if isinstance(file_text, bytes):
        path.write_bytes(file_text)
    elif file_text is not None:
        path.write_text(file_text, encoding="utf-8")
    with pytest.raises(ConfigError, match="LORANER_API_KEYS_FILE") as caught:
        create_app(ServeSettings(api_keys_file=path), lambda s: FakePredictor())
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert KEY not in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_when_the_keys_file_is_unreadable_then_start_up_says_permission_denied(tmp_path):
    path = keys_file(tmp_path, KEY)
    path.chmod(0)
    with pytest.raises(ConfigError, match="permission denied"):
        create_app(ServeSettings(api_keys_file=path), lambda s: FakePredictor())


def test_when_a_configured_key_is_weak_then_the_error_names_the_item_not_the_key():
    with pytest.raises(ConfigError, match=r"LORANER_API_KEYS \(--api-keys\) item 2: .*at least 16") as caught:
        create_app(ServeSettings(api_keys=f"{KEY},tooshort"), lambda s: FakePredictor())
    assert "tooshort" not in str(caught.value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_loraner_serve_with_keys_takes_its_flags_and_never_logs_a_key(tiny_onnx_dir, tmp_path):
    """The real command on the tiny ONNX model: one key from the environment, one from --api-keys-file,
    --no-protect-metrics, --protect-demo and --cors-origins; requests with right, wrong and no keys;
    debug logging. The log has a line per request and no key anywhere."""
    port = free_port()
    path = keys_file(tmp_path, f"{FILE_KEY}\n")
    env = {**os.environ, "LORANER_API_KEYS": KEY, "LORANER_LOG_LEVEL": "debug"}
    command = [sys.executable, "-m", "loraner", "serve", "--model", str(tiny_onnx_dir), "--port", str(port)]
    command += ["--threads", "1", "--api-keys-file", str(path), "--no-protect-metrics", "--protect-demo"]
    command += ["--cors-origins", "https://notes.example.org"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_process_ready(url, server, timeout=90)
        statuses = [
            httpx.post(f"{url}/predict", json=TEXT, headers=bearer(KEY)).status_code,
            httpx.post(f"{url}/predict", json=TEXT, headers=bearer(FILE_KEY)).status_code,
            httpx.post(f"{url}/predict", json=TEXT, headers=bearer(WRONG)).status_code,
            httpx.post(f"{url}/predict", json=TEXT).status_code,
            httpx.get(f"{url}/metrics").status_code,  # --no-protect-metrics
            httpx.get(f"{url}/demo").status_code,  # --protect-demo
            httpx.get(f"{url}/demo", headers=bearer(KEY)).status_code,
        ]
        preflight = httpx.options(
            f"{url}/predict",
            headers={"Origin": "https://notes.example.org", "Access-Control-Request-Method": "POST"},
        )
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    log = server.stdout.read().decode()
    assert statuses == [200, 200, 401, 401, 200, 401, 200], log[-3000:]
    assert code == 0
    assert preflight.headers["access-control-allow-origin"] == "https://notes.example.org"  # --cors-origins
    assert '"api_keys": 2' in log  # the start-up line says how many keys, not which
    assert log.count('"path": "/predict", "status": 401') == 2, log[-3000:]
    for secret in (KEY, FILE_KEY, WRONG, KEY[:12], FILE_KEY[:12]):
        assert secret not in log
    assert "Kari" not in log


def test_loraner_serve_with_a_bad_keys_file_exits_1_with_one_line(tiny_onnx_dir, tmp_path):
    empty = keys_file(tmp_path, "# no keys yet\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loraner",
            "serve",
            "--model",
            str(tiny_onnx_dir),
            "--api-keys-file",
            str(empty),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no keys in it" in errors[0] and str(empty) in errors[0], result.stderr


def test_keys_from_the_flag_or_variable_are_split_on_commas_and_never_shown(monkeypatch):
    monkeypatch.setenv("LORANER_API_KEYS", f" {KEY} ,{FILE_KEY},")
    from_env = ServeSettings.from_env()
    from_flag = ServeSettings.from_env(api_keys=f"{FILE_KEY},{KEY}")  # what --api-keys passes
    for settings in (from_env, from_flag):
        assert sorted(k.get_secret_value() for k in settings.api_keys) == sorted([KEY, FILE_KEY])
        shown = f"{settings!r} {settings} {settings.model_dump()}"
        assert KEY not in shown and FILE_KEY not in shown


def test_when_the_keys_file_is_a_directory_then_start_up_says_so(tmp_path):
    with pytest.raises(ConfigError, match="a directory, not a file of keys"):
        create_app(ServeSettings(api_keys_file=tmp_path), lambda s: FakePredictor())
