"""The ONNX Runtime adapter route as a user starts it: `loraner serve --base OUT --adapters OUT/adapters`
over the int8 base graph of `loraner export onnx-adapters`, in a process where torch, PEFT and
Transformers cannot be imported (the ONNX image has none of them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest
from serve_helpers import wait_process_ready
from test_adapters_presets_http import TEXTS, free_port, spans

from loraner.inference.adapters import MultiAdapterPredictor

# `loraner serve` with the torch side made unimportable first.
WITHOUT_TORCH = (
    "import sys\n"
    "for name in ('torch', 'peft', 'transformers'):\n"
    "    sys.modules[name] = None\n"
    "from loraner.cli import main\n"
    "sys.argv = ['loraner', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.fixture(scope="module")
def local(onnx_adapters_dir) -> MultiAdapterPredictor:
    return MultiAdapterPredictor.from_pretrained(str(onnx_adapters_dir), onnx_adapters_dir / "adapters")


def test_loraner_serve_runs_the_int8_onnx_adapters_without_torch(onnx_adapters_dir, local, tiny_adapter_runs):
    port = free_port()
    command = [sys.executable, "-c", WITHOUT_TORCH, "serve", "--base", str(onnx_adapters_dir)]
    command += ["--adapters", str(onnx_adapters_dir / "adapters"), "--backend", "onnx"]
    command += ["--base-quantization", "int8", "--max-loaded-adapters", "2", "--port", str(port)]
    command += ["--threads", "1", "--log-level", "warning"]
    server = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    names = local.names
    try:
        wait_process_ready(url, server, timeout=90)
        with httpx.Client(base_url=url, timeout=60) as client:
            info = client.get("/").json()["model"]
            assert info["backend"] == "onnx" and "(int8)" in info["name"]
            listed = client.get("/adapters").json()["adapters"]
            assert sorted(a["name"] for a in listed) == sorted(names) and not any(a["loaded"] for a in listed)
            for name in names:
                response = client.post("/predict", json={"text": TEXTS[1], "adapter": name})
                assert response.status_code == 200, response.text
                assert spans(response.json()["entities"]) == spans(local.predict(TEXTS[1], name)), name
            mixed = [names[i % len(names)] for i in range(len(TEXTS) * len(names))]
            texts = [TEXTS[i % len(TEXTS)] for i in range(len(mixed))]
            batch = client.post("/predict/batch", json={"texts": texts, "adapters": mixed})
            assert batch.status_code == 200, batch.text
            got = [spans(r["entities"]) for r in batch.json()["results"]]
            assert got == [spans(e) for e in local.predict_batch(texts, mixed)] and any(got)
            listed = client.get("/adapters").json()["adapters"]
            assert sum(a["loaded"] for a in listed) == 2
            loads = {a["name"]: a["loads"] for a in listed}
            evictions = {a["name"]: a["evictions"] for a in listed}
            # Every load but the two still loaded was undone by an eviction; four adapters, a cap of two.
            assert sum(loads.values()) - sum(evictions.values()) == 2 and sum(evictions.values()) >= 2
            metrics = client.get("/metrics").text
            for name in names:
                assert f'loraner_adapter_loads_total{{adapter="{name}"}} {loads[name]:.1f}' in metrics
                assert f'loraner_adapter_evictions_total{{adapter="{name}"}} {evictions[name]:.1f}' in metrics
            unnamed = client.post("/predict", json={"text": TEXTS[0]})
            assert unnamed.status_code == 422 and sorted(unnamed.json()["available"]) == sorted(names)
            unknown = client.post("/predict", json={"text": TEXTS[0], "adapter": "medication"})
            assert unknown.status_code == 404
            deid = client.post("/deidentify", json={"text": TEXTS[0], "adapter": "clinical"})
            assert deid.status_code == 200, deid.text
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_base_quantization_the_graph_was_not_exported_with_is_refused(onnx_adapters_dir):
    from loraner.errors import ConfigError

    with pytest.raises(ConfigError, match="base graph's linear layers are int8, not none"):
        MultiAdapterPredictor.from_pretrained(
            str(onnx_adapters_dir), onnx_adapters_dir / "adapters", quantization="none"
        )


def test_an_onnx_adapter_broken_after_start_up_is_a_503_naming_it_and_the_others_still_answer(
    tmp_path, onnx_adapters_dir, local
):
    import shutil

    from serve_helpers import assert_a_broken_adapter_is_a_503, running_server, wait_ready

    from loraner.serve import ServeSettings, create_app

    late = shutil.copytree(onnx_adapters_dir / "adapters" / "all_linear", tmp_path / "late")
    clinical = onnx_adapters_dir / "adapters" / "clinical"
    settings = ServeSettings(base=str(onnx_adapters_dir), adapter=[f"late={late}", f"clinical={clinical}"])
    with running_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(url)
        weights = late / "adapter.onnx_adapter"
        weights.write_bytes(weights.read_bytes()[:100])  # replaced by a broken copy after start-up
        fine = assert_a_broken_adapter_is_a_503(
            client, TEXTS, "late", "clinical", "cannot be read", str(tmp_path)
        )
        assert spans(fine.json()["entities"]) == spans(local.predict(TEXTS[0], "clinical"))
