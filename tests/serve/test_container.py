"""The serving image, checked without a Docker engine.

1. The Dockerfile's runtime stages: non-root user, HEALTHCHECK, TOKENIZERS_PARALLELISM=false, and the
   ONNX image's virtualenv built from docker/requirements-serve.txt with no PyTorch anywhere in it.
2. The honest check: ``loraner serve`` started in an environment where only the packages of
   requirements-serve.txt (and their dependencies) are importable — a site-packages of symlinks to
   exactly those distributions, ``python -S`` so nothing else is on the path. torch, peft, datasets,
   seqeval and matplotlib are therefore absent, as in the image. It must load the ONNX model, answer
   /ready and /predict, and import every listed package (nothing dead in the image).
3. With LORANER_SLOW=1: a real fresh venv from the same file with pip, serving the same way.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
REQUIREMENTS = DOCKER / "requirements-serve.txt"
TRAINING_ONLY = {"torch", "peft", "datasets", "seqeval", "matplotlib", "accelerate", "faker"}
# Not in the ONNX image either: the service reads tokenizer.json with `tokenizers` alone.
NOT_SERVED = TRAINING_ONLY | {"transformers"}


# --- 1. the Dockerfile ---------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, dict]:
    """name -> {"parent": stage or image, "lines": [instruction lines]} (continuations joined)."""
    text = (DOCKER / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    stages: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            current = {"parent": match.group(1), "lines": []}
            stages[match.group(2) or f"stage{len(stages)}"] = current
        elif current is not None:
            current["lines"].append(line)
    return stages


def chain(stages: dict[str, dict], name: str) -> list[str]:
    """All instruction lines a stage inherits, base first."""
    lines: list[str] = []
    while name in stages:
        lines = stages[name]["lines"] + lines
        name = stages[name]["parent"]
    return lines


def copied_from(lines: list[str]) -> set[str]:
    return {m.group(1) for line in lines for m in [re.match(r"COPY\s+--from=(\S+)", line)] if m}


@pytest.mark.parametrize("target", ["onnx", "torch", "onnx-bundled"])
def test_runtime_stages_are_non_root_with_healthcheck(target):
    stages = dockerfile_stages()
    lines = chain(stages, target)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "runs as a non-root user"
    assert any(line.startswith("HEALTHCHECK ") and "/ready" in line for line in lines)
    assert any("TOKENIZERS_PARALLELISM=false" in line for line in lines)
    assert any(line.startswith("CMD ") and "serve" in line for line in lines)


def test_default_target_is_onnx_and_its_venv_has_no_torch():
    stages = dockerfile_stages()
    assert list(stages)[-1] == "onnx", "the last stage is the default build target"
    sources = copied_from(stages["onnx"]["lines"])
    assert sources == {"build-onnx"}
    build = chain(stages, "build-onnx")
    # pip runs from a tool venv of its own and installs into /opt/venv, which never gets pip.
    assert any("venv --without-pip /opt/venv" in line for line in build)
    installs = [line for line in build if line.startswith("RUN") and re.search(r"\bpip\b.* install ", line)]
    assert installs and all("--python /opt/venv/bin/python install" in line for line in installs)
    assert any(re.search(r"install (--\S+ )*-r /tmp/requirements-serve\.txt", line) for line in installs)
    assert any("--no-deps" in line for line in installs), "the project adds no dependencies of its own"
    assert not any("torch" in line for line in build)


def test_the_base_is_a_build_argument_and_no_frontend_image_is_fetched():
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS base$", text, re.MULTILINE)
    assert not re.search(r"^#\s*syntax=", text, re.MULTILINE), "BuildKit would fetch a frontend image"


def requirement_names() -> list[Requirement]:
    lines = [line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    return [Requirement(line) for line in lines if line]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_requirements_are_pinned_and_free_of_training_packages():
    reqs = requirement_names()
    assert all(str(r.specifier).startswith("==") for r in reqs), "pinned, so the image is reproducible"
    assert not {norm(r.name) for r in reqs} & NOT_SERVED


# --- 2. serving with exactly the requirements' closure ---------------------------------------------------


def closure(reqs: list[Requirement]) -> dict[str, md.Distribution]:
    """Installed distributions the requirements pull in (markers and extras respected)."""
    found: dict[str, md.Distribution] = {}
    todo = [(r, "") for r in reqs]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        key = norm(req.name)
        if key in found:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            pytest.fail(f"{req.name} (needed by requirements-serve.txt) is not installed in this venv")
        found[key] = dist
        for sub in dist.requires or []:
            for e in req.extras or {""}:
                todo.append((Requirement(sub), e))
    return found


def top_level_entries(dist: md.Distribution) -> set[str]:
    names = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first not in ("..", "__pycache__") and not first.endswith(".pth"):
            names.add(first)
    return names


@pytest.fixture(scope="module")
def shadow_site(tmp_path_factory) -> tuple[Path, dict[str, md.Distribution]]:
    dists = closure(requirement_names())
    assert not set(dists) & NOT_SERVED, "a serve requirement drags in a training package or Transformers"
    site = tmp_path_factory.mktemp("shadow-site")
    for dist in dists.values():
        root = Path(str(dist.locate_file("")))
        for entry in top_level_entries(dist):
            if (root / entry).exists() and not (site / entry).exists():
                (site / entry).symlink_to(root / entry)
    return site, dists


SERVE_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, os, sys, threading, time, urllib.request

    blocked = [m for m in %(blocked)r if importlib.util.find_spec(m) is not None]
    model, port = sys.argv[1], sys.argv[2]
    from loraner.cli import app  # the `loraner` console script's entry point

    args = ["serve", "--model", model, "--port", port, "--threads", "1", "--log-level", "warning"]
    threading.Thread(target=lambda: app(args, standalone_mode=False), daemon=True).start()
    base = "http://127.0.0.1:" + port
    ready = False
    for _ in range(600):
        try:
            ready = urllib.request.urlopen(base + "/ready", timeout=2).status == 200
            if ready:
                break
        except Exception:
            pass
        time.sleep(0.1)
    request = urllib.request.Request(
        base + "/predict", data=json.dumps({"text": "José Müller bor i Tromsø."}).encode(),
        headers={"content-type": "application/json"})
    answer = json.loads(urllib.request.urlopen(request, timeout=30).read()) if ready else None
    modules = sorted({name.split(".")[0] for name in sys.modules})
    print("RESULT " + json.dumps({"blocked": blocked, "ready": ready, "answer": answer, "modules": modules}))
    sys.stdout.flush()
    os._exit(0)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_serve(python: list[str], env: dict[str, str], model: Path, tmp_path: Path) -> dict:
    script = tmp_path / "serve_check.py"
    script.write_text(SERVE_SCRIPT % {"blocked": sorted(NOT_SERVED)})
    proc = subprocess.run(
        [*python, str(script), str(model), str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LORANER_", "VIRTUAL_ENV"))}
    return {**keep, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", **extra}


def test_loraner_serve_runs_with_only_the_serve_requirements(shadow_site, tiny_onnx_dir, tmp_path):
    site, dists = shadow_site
    env = clean_env(PYTHONPATH=f"{site}{os.pathsep}{ROOT / 'src'}")
    result = run_serve([sys.executable, "-S"], env, tiny_onnx_dir, tmp_path)
    assert result["blocked"] == [], "training packages must not be importable in this environment"
    assert result["ready"] is True
    text = "José Müller bor i Tromsø."
    assert all(e["text"] == text[e["start"] : e["end"]] for e in result["answer"]["entities"])
    imported = set(result["modules"])
    unused = [r.name for r in requirement_names() if not top_modules(dists[norm(r.name)]) & imported]
    assert unused == [], f"listed in requirements-serve.txt but never imported by `loraner serve`: {unused}"


def top_modules(dist: md.Distribution) -> set[str]:
    return {
        Path(e).stem.split(".")[0] for e in top_level_entries(dist) if not e.endswith((".dist-info", ".libs"))
    }


# --- 3. a real fresh virtualenv (slow, needs the package index) --------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("LORANER_SLOW") != "1", reason="set LORANER_SLOW=1 (installs packages)")
def test_fresh_venv_from_requirements_serves(tmp_path, tiny_onnx_dir):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True, timeout=900)
    env = clean_env(PYTHONPATH=str(ROOT / "src"))
    result = run_serve([str(venv / "bin" / "python")], env, tiny_onnx_dir, tmp_path)
    assert result["blocked"] == [] and result["ready"] is True
