"""A real ``loraner serve`` subprocess on 127.0.0.1, a bounded asyncio HTTP client, and peak RSS.

Only loopback is used: the server binds 127.0.0.1 on a free port and the client talks to it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.lib.common import percentile

HOST = "127.0.0.1"
# What docker/Dockerfile sets for the 1 GB box: one inference at a time, two malloc arenas.
CONTAINER_ENV = {"LORANER_CONCURRENCY": "1", "MALLOC_ARENA_MAX": "2"}
NOTE_EVERY = 50  # one long note among this many requests: a service also sees long texts, they set the peak


def request_texts(sentences: Sequence[str], notes: Sequence[str], every: int = NOTE_EVERY) -> list[str]:
    """The request mix of the memory measurements: the sentences, with a long note every ``every``."""
    out: list[str] = []
    for i, text in enumerate(sentences):
        if notes and i % every == every - 1:
            out.append(notes[(i // every) % len(notes)])
        out.append(text)
    return out


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    ready_seconds: float

    def memory_mb(self) -> dict[str, float | None]:
        """Current and peak resident memory of the server process (Linux /proc; psutil elsewhere)."""
        status = Path(f"/proc/{self.process.pid}/status")
        if status.exists():
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)

            def mb(key: str) -> float | None:
                value = fields.get(key)
                return round(int(value.split()[0]) / 1024, 1) if value else None

            return {"rss_mb": mb("VmRSS"), "peak_rss_mb": mb("VmHWM")}
        import psutil

        rss = psutil.Process(self.process.pid).memory_info().rss / 2**20
        return {"rss_mb": round(rss, 1), "peak_rss_mb": None}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def loraner_command() -> list[str]:
    script = Path(sys.executable).with_name("loraner")
    if script.exists():
        return [str(script)]
    found = shutil.which("loraner")
    return [found] if found else [sys.executable, "-m", "loraner.cli"]


@dataclass(frozen=True)
class ServeSpec:
    """One ``loraner serve`` to start: ``--model model_dir --backend backend``, or ``model_args`` in
    their place (e.g. ``--base B --adapters F``), with ``env`` added to its environment, its output in
    ``log``."""

    log: Path
    model_dir: Path | None = None
    backend: str = "onnx"
    env: dict[str, str] | None = None
    model_args: Sequence[str] | None = None


@contextlib.contextmanager
def serve(
    model_dir: Path | None,
    backend: str,
    threads: int,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 600.0,
    model_args: Sequence[str] | None = None,
) -> Iterator[Server]:
    """``loraner serve`` on a free loopback port until ``/ready``; stopped (SIGINT, then kill) on exit.
    ``model_args`` replace ``--model model_dir --backend backend`` (e.g. ``--base B --adapters F``)."""
    spec = ServeSpec(log, model_dir, backend, env, model_args)
    with serve_all([spec], threads, timeout) as (server,):
        yield server


@contextlib.contextmanager
def serve_all(specs: Sequence[ServeSpec], threads: int, timeout: float = 600.0) -> Iterator[list[Server]]:
    """Every spec's ``loraner serve`` started at once, each on its own free loopback port, yielded when
    all answer ``/ready``; all stopped on exit. Their start-ups share the cores, so each one's
    ``ready_seconds`` includes the others' work."""
    started = time.perf_counter()
    launched: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for spec in specs:
            launched.append(launch(spec, threads))
        servers = []
        for url, process, log in launched:
            wait_ready(url, process, log, timeout)
            servers.append(Server(url, process, log, time.perf_counter() - started))
        yield servers
    finally:
        stop_all([process for _, process, _ in launched])


def served_in_turn(specs: Sequence[ServeSpec], threads: int, together: bool) -> Iterator[Server]:
    """The servers of ``specs`` in order, each ready when it comes: all started at once (``together``:
    the start-ups overlap, and each is stopped after the last one's turn) or each started for its turn
    alone. Use it under ``contextlib.closing`` so that a failure stops the servers still running."""
    groups = [list(specs)] if together else [[spec] for spec in specs]
    for group in groups:
        with serve_all(group, threads) as servers:
            yield from servers


def launch(spec: ServeSpec, threads: int) -> tuple[str, subprocess.Popen[bytes], Path]:
    port = free_port()
    model = (
        ["--model", str(spec.model_dir), "--backend", spec.backend]
        if spec.model_args is None
        else list(spec.model_args)
    )
    command = [
        *loraner_command(),
        "serve",
        *model,
        "--threads",
        str(threads),
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(spec.env or {})}
    with spec.log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    return f"http://{HOST}:{port}", process, spec.log


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"loraner serve exited with {process.returncode}; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"loraner serve not ready after {timeout:.0f} s; see {log}")


def stop_all(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGINT to every running one at once (their shutdowns overlap), then a kill for any still running
    20 s later."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 20
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# --- the client ------------------------------------------------------------------------------------


@dataclass
class LoadStats:
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    client_cpu_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "requests_ok": len(self.latencies),
            "errors": self.errors,
            "error_examples": self.error_examples[:3],
            "requests_per_s": round(len(self.latencies) / self.seconds, 2) if self.seconds else 0.0,
            "p50_ms": round(1000 * percentile(self.latencies, 50), 1),
            "p99_ms": round(1000 * percentile(self.latencies, 99), 1),
            "client_cpu_seconds": round(self.client_cpu_seconds, 2),
        }


def drive(
    url: str,
    texts: Sequence[str],
    clients: int,
    seconds: float,
    max_requests: int,
    adapters: Sequence[str] | None = None,
) -> LoadStats:
    """``clients`` concurrent connections posting ``/predict`` in a closed loop, until ``seconds``
    have passed or ``max_requests`` were sent; requests in flight at the deadline are awaited.
    ``adapters``: request ``i`` names ``adapters[i % len(adapters)]`` (a multi-adapter server)."""
    cpu = time.process_time()
    stats = asyncio.run(_drive(url, list(texts), clients, seconds, max_requests, adapters))
    stats.client_cpu_seconds = time.process_time() - cpu
    return stats


async def _drive(
    url: str,
    texts: list[str],
    clients: int,
    seconds: float,
    max_requests: int,
    adapters: Sequence[str] | None = None,
) -> LoadStats:
    stats = LoadStats(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    sent = 0
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal sent
            while time.perf_counter() < deadline and sent < max_requests:
                body: dict[str, str] = {"text": texts[sent % len(texts)]}
                if adapters:
                    body["adapter"] = adapters[sent % len(adapters)]
                sent += 1
                await one(client, body, stats)

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        stats.seconds = time.perf_counter() - started
    return stats


async def one(client: httpx.AsyncClient, body: dict[str, str], stats: LoadStats) -> None:
    started = time.perf_counter()
    try:
        response = await client.post("/predict", json=body)
    except httpx.HTTPError as exc:
        stats.errors += 1
        stats.error_examples.append(f"{type(exc).__name__}: {exc}")
        return
    if response.status_code == 200:
        stats.latencies.append(time.perf_counter() - started)
    else:
        stats.errors += 1
        stats.error_examples.append(f"HTTP {response.status_code}: {response.text[:200]}")
