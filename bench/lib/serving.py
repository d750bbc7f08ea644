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
    port = free_port()
    model = ["--model", str(model_dir), "--backend", backend] if model_args is None else list(model_args)
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
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    try:
        url = f"http://{HOST}:{port}"
        wait_ready(url, process, log, timeout)
        yield Server(url, process, log, time.perf_counter() - started)
    finally:
        stop(process)


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


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
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
