"""Schemathesis against the real app (the tiny ONNX model behind real Uvicorn): positive and negative
cases for every operation in the OpenAPI schema, all checks. Zero failures, zero 5xx."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serve_helpers import running_server, wait_ready

from loraner.serve import ServeSettings, create_app

# Generated cases per operation and mode in the fuzzing phase; LORANER_SCHEMATHESIS_EXAMPLES raises it
# for a longer probe. The coverage phase (boundary and invalid values of every field, about 250 cases
# on the single model) does not depend on it. The default keeps the three runs near a minute on two
# cores (about 420 requests on the single model, 330 and 360 on the others); the 2,000-request
# run is LORANER_SCHEMATHESIS_EXAMPLES=360 and LORANER_SCHEMATHESIS_MIN_REQUESTS=2000.
EXAMPLES = int(os.environ.get("LORANER_SCHEMATHESIS_EXAMPLES", "50"))
MIN_REQUESTS = int(os.environ.get("LORANER_SCHEMATHESIS_MIN_REQUESTS", "350"))
CONFIG = Path(__file__).with_name("schemathesis.toml")


API_KEY = "schemathesis-key-0123456789"


# With an API key too: schemathesis sends it with every case (-H), and its ignored_auth check sends
# cases without it and expects the 401 the schema declares. Fewer examples there: the routes and
# validation are the same, only the guard in front of them is new. "adapters": the multi-adapter app (the
# tiny base and two trained adapters, no default adapter, so requests must name one), fewer examples too:
# its bodies differ from the single model's only in the adapter fields.
@pytest.mark.parametrize(
    ("served", "api_key", "examples", "min_requests"),
    [
        ("model", None, EXAMPLES, MIN_REQUESTS),
        ("model", API_KEY, max(EXAMPLES // 3, 1), MIN_REQUESTS // 3),
        ("adapters", None, max(EXAMPLES // 3, 1), MIN_REQUESTS // 3),
    ],
    ids=["open", "api-key", "adapters"],
)
def test_schemathesis_finds_no_failures(request, tmp_path, served, api_key, examples, min_requests):
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if st is None:
        pytest.skip("schemathesis is not installed (the dev extra)")
    if served == "model":
        model = {"model": str(request.getfixturevalue("tiny_onnx_dir"))}
    else:
        runs = request.getfixturevalue("tiny_adapter_runs")
        base = request.getfixturevalue("tiny_roberta_dir")
        model = {"base": str(base), "adapter": [f"{name}={run / 'adapter'}" for name, run in runs.items()]}
    settings = ServeSettings(
        **model,
        threads=1,
        max_text_chars=1000,
        max_batch=4,
        max_body_bytes=200_000,
        api_keys=api_key or [],
    )
    auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    report = tmp_path / "report.json"
    with running_server(create_app(settings)) as url:
        wait_ready(url)
        before = served_requests(url, auth)  # the readiness polls
        result = subprocess.run(
            [
                st,
                "--config-file",
                str(CONFIG),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--mode",
                "all",
                "--max-examples",
                str(examples),
                *(["--header", f"Authorization: {auth['Authorization']}"] if auth else []),
                "--seed",
                "11",
                "--workers",
                "2",
                "--request-timeout",
                "30",
                "--report",
                "ndjson",
                "--report-ndjson-path",
                str(report),
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,  # schemathesis keeps a cache in the working directory
        )
        served = served_requests(url, auth) - before
    summary = result.stdout[-6000:]
    print(summary)  # the closing summary (shown with -s, or on failure)
    assert result.returncode == 0, summary + result.stderr[-2000:]
    statuses = collections.Counter()
    for line in report.read_text().splitlines():
        event = json.loads(line) if line.strip() else {}
        for interaction in (
            event.get("ScenarioFinished", {}).get("recorder", {}).get("interactions", {}).values()
        ):
            response = interaction.get("response") or {}
            statuses[response.get("status_code", "no response")] += 1
    print(f"schemathesis: {sum(statuses.values())} test cases, by status: {dict(sorted(statuses.items()))}")
    print(f"the server answered {sum(served.values())} requests, by status: {dict(sorted(served.items()))}")
    assert not [s for s in statuses if not isinstance(s, int) or s >= 500], statuses
    assert not [s for s in served if s >= 500], served
    assert sum(served.values()) >= min_requests, served
    if api_key:
        assert served[401] > 0, "schemathesis never tried without the key"


def served_requests(url: str, headers: dict[str, str]) -> collections.Counter:
    """Requests the server answered, by status, from its own Prometheus counter."""
    import httpx

    counts: collections.Counter = collections.Counter()
    for line in httpx.get(f"{url}/metrics", headers=headers).text.splitlines():
        if line.startswith("loraner_requests_total{"):
            status = int(line.split('status="')[1].split('"')[0])
            counts[status] += int(float(line.rsplit(" ", 1)[1]))
    return counts
