"""Quickstart model: torch fp32 and bf16 vs ONNX fp32 and int8 — latency, throughput, server peak RSS,
test-note entity F1 and the entity agreement of each variant with torch fp32.

    python -m bench.scripts.quickstart_backends --model .demo/quickstart/merged [--threads 2]

Writes bench/results/quickstart_backends.json, naming the CPU and its class (bf16 is only fast where the
CPU computes it natively: AMX or AVX512-BF16; elsewhere it is emulated and slow). Texts are the
quickstart's synthetic test notes (``.demo/synth/test.jsonl``), split into sentences for the
single-request latency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def sentences_of(notes: list[str], limit: int) -> list[str]:
    out = [s.strip() for note in notes for s in note.replace("\n", ". ").split(". ") if len(s.split()) >= 5]
    return out[:limit]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(predictor, sentences: list[str], notes: list[str], repeats: int) -> dict[str, float]:
    for s in sentences[:5]:
        predictor.predict(s)  # warm-up
    latencies = []
    for s in sentences:
        start = time.perf_counter()
        predictor.predict(s)
        latencies.append((time.perf_counter() - start) * 1000)
    batch_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict_batch(sentences)
        batch_times.append(time.perf_counter() - start)
    note_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict_batch(notes)
        note_times.append(time.perf_counter() - start)
    return {
        "latency_p50_ms": round(statistics.median(latencies), 2),
        "latency_p99_ms": round(percentile(latencies, 0.99), 2),
        "batch_sentences_per_s": round(len(sentences) / statistics.median(batch_times), 1),
        "batch_notes_per_s": round(len(notes) / statistics.median(note_times), 2),
    }


def server_peak_rss(model: Path, backend: str, dtype: str, threads: int, requests: int, port: int) -> float:
    env = {**os.environ, "LORANER_THREADS": str(threads), "LORANER_DTYPE": dtype}
    cmd = [
        sys.executable,
        "-m",
        "loraner.cli",
        "serve",
        "--model",
        str(model),
        "--backend",
        backend,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        body = json.dumps(
            {"text": "Pasient Kari Nordmann (45 år) ble innlagt på Haukeland 12.03.2021."}
        ).encode()
        for _ in range(requests):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/predict", body, {"Content-Type": "application/json"}
            )
            urllib.request.urlopen(req, timeout=30).read()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
        return round(hwm_kb / 1024, 1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_ready(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"server on port {port} not ready after {timeout}s")


def main() -> None:
    from bench.lib.common import RESULTS_DIR, cpu_class, cpu_line, machine_info
    from loraner.data.jsonl import read_span_file
    from loraner.export.onnx import export_onnx
    from loraner.inference import NERPredictor
    from loraner.scores import entity_f1

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path(".demo/quickstart/merged"))
    parser.add_argument("--notes", type=Path, default=Path(".demo/synth/test.jsonl"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    print(cpu_line(), flush=True)
    test_notes = read_span_file(args.notes)
    gold = [n.spans for n in test_notes]
    all_notes = [n.text for n in test_notes]
    notes = all_notes[:50]
    sentences = sentences_of(notes, args.sentences)
    export_dir = args.model.parent / "onnx"
    variants = {"torch fp32": (args.model, "torch", "fp32"), "torch bf16": (args.model, "torch", "bf16")}
    for name, quantize in (("onnx fp32", None), ("onnx int8", "int8")):
        out = export_dir / (quantize or "fp32")
        if not (out / "model.onnx").exists():
            export_onnx(args.model, out, quantize=quantize, sample_texts=sentences[:50])
        variants[name] = (out, "onnx", "fp32")
    rows: dict[str, dict] = {}
    found = {}
    for i, (name, (path, backend, dtype)) in enumerate(variants.items()):
        predictor = NERPredictor.from_pretrained(path, backend=backend, threads=args.threads, dtype=dtype)
        found[name] = predictor.predict_batch(all_notes)
        rows[name] = measure(predictor, sentences, notes, args.repeats)
        rows[name]["test_f1"] = round(entity_f1(gold, found[name]), 4)
        # The share of torch fp32's entities this variant gives exactly (entity F1 against fp32's).
        rows[name]["agreement_with_fp32"] = round(entity_f1(found["torch fp32"], found[name]), 4)
        rows[name]["server_peak_rss_mb"] = server_peak_rss(
            path, backend, dtype, args.threads, args.requests, 8700 + i
        )
        print(name, rows[name], flush=True)
    result = {
        "machine": machine_info(args.threads),
        "cpu_class": cpu_class(),
        "test_notes": len(all_notes),
        "model": str(args.model),
        "threads": args.threads,
        "sentences": len(sentences),
        "notes": len(notes),
        "server_requests": args.requests,
        "rows": rows,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "quickstart_backends.json").write_text(json.dumps(result, indent=2))
    columns = ("p50 ms", "p99 ms", "sent/s", "notes/s", "RSS MB", "F1", "agree")
    header = f"{'backend':<12}" + "".join(f"{c:>9}" for c in columns)
    print(header)
    for name, r in rows.items():
        print(
            f"{name:<12}{r['latency_p50_ms']:>9}{r['latency_p99_ms']:>9}{r['batch_sentences_per_s']:>9}"
            f"{r['batch_notes_per_s']:>9}{r['server_peak_rss_mb']:>9}{r['test_f1']:>9}{r['agreement_with_fp32']:>9}"
        )
    print(cpu_line())


if __name__ == "__main__":
    main()
