"""The int8 bases of the multi-adapter path against fp32 on *trained* adapters (issue 24's agreement target).

    python -m bench.scripts.trained_adapter_agreement --phi RUN --conll RUN [--mpnet RUN]
        [--threads 2] [--notes 50] [--sentences 200]

``--phi``: a run of the quickstart preset (``loraner train quickstart -o RUN``); ``--conll``: a run of
``conll-minilm-lora`` (the accuracy bench keeps one in ``bench/.cache/accuracy/minilm-lora``). Both on
MiniLM, so they share a base. Each adapter's entities from the PyTorch fp32 pool are the reference for:
the PyTorch int8 base (``--base-quantization int8``), ONNX Runtime's int8 base graph (``loraner export
onnx-adapters``, what the serving image runs) and, as the baseline in the same run, each run's merged
model exported to ONNX int8 (``loraner export onnx --quantize int8``) against the merged model in fp32.
Texts: Nor-DeID holdout notes (the PHI adapter's domain) and CoNLL-2003 test sentences (the CoNLL
adapter's); each adapter is judged on its own domain, the other shown beside it. Prints a table and
writes ``bench/results/trained_adapter_agreement.json``.

``--mpnet``: a run of ``conll-mpnet-lora`` (the accuracy bench keeps one in
``bench/.cache/accuracy/mpnet-lora``), a CoNLL adapter on the base-size MPNet: measured the same way on
its own base, on the sentences only.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.lib.adapters import agreement_of
from bench.lib.common import (
    CACHE_DIR,
    FULL,
    RESULTS_DIR,
    Context,
    Stopwatch,
    cpu_line,
    print_table,
    print_targets,
    target,
    write_result,
)
from bench.lib.data import read_conll_examples

AGREEMENT_TARGET = 0.99
DOMAINS = {"phi": "notes", "conll": "sentences", "mpnet": "sentences"}  # where each adapter is judged


def texts_by_domain(notes: int, sentences: int) -> dict[str, list[str]]:
    from loraner.data.nordeid import read_nor_deid_file
    from loraner.settings import shared_dir

    holdout = shared_dir() / "data" / "nor-deid-synth" / "holdout.json"
    if not holdout.is_file() or read_conll_examples("test") is None:
        raise SystemExit(f"needs {holdout} and CoNLL-2003 in {shared_dir() / 'data' / 'conll2003'}")
    conll = [ex for ex in read_conll_examples("test") or [] if len(ex.tokens) > 3]
    return {
        "notes": [ex.text for ex in read_nor_deid_file(holdout)[:notes]],
        "sentences": [" ".join(ex.tokens) for ex in random.Random(0).sample(conll, sentences)],
    }


def exports(
    runs: dict[str, Path], sample: list[str], out: Path, threads: int, prefix: str = ""
) -> dict[str, Path]:
    """The adapters' ONNX Runtime form (one int8 base graph for ``runs``, which share a base) and each
    merged model in ONNX int8, with no agreement floor: this script measures the agreement the export
    would otherwise gate on."""
    from loraner.export.onnx import export_onnx
    from loraner.export.onnx_adapters import export_onnx_adapters

    base = base_of(runs)
    made = {"adapters": out / f"{prefix}onnx-adapters"}
    if not (made["adapters"] / "export_report.json").is_file():
        adapters = {name: run / "adapter" for name, run in runs.items()}
        export_onnx_adapters(
            base, adapters, made["adapters"], sample_texts=sample, int8_floor=0.0, threads=threads
        )
    for name, run in runs.items():
        made[name] = out / f"{name}-merged-onnx-int8"
        if not (made[name] / "model.onnx").is_file():
            export_onnx(run / "merged", made[name], quantize="int8", sample_texts=sample, int8_floor=0.0)
    return made


def base_of(runs: dict[str, Path]) -> str:
    """The base model the runs' adapters share."""
    from loraner.modeldir import ModelDir

    bases = {ModelDir.find(run / "adapter").meta.base_model for run in runs.values()}
    if len(bases) != 1:
        raise SystemExit(f"these runs do not share a base model: {sorted(bases)}")
    return bases.pop()


def measure(runs: dict[str, Path], texts: dict[str, list[str]], made: dict[str, Path], threads: int) -> dict:
    from loraner.inference import NERPredictor
    from loraner.inference.adapters import MultiAdapterPredictor

    base = base_of(runs)
    adapters = {name: run / "adapter" for name, run in runs.items()}
    pools: dict[str, Callable[[], Any]] = {
        "fp32": lambda: MultiAdapterPredictor.from_pretrained(base, adapters, dtype="fp32", threads=threads),
        "torch int8 base": lambda: MultiAdapterPredictor.from_pretrained(
            base, adapters, dtype="fp32", quantization="int8", threads=threads
        ),
        "onnx int8 base": lambda: MultiAdapterPredictor.from_pretrained(
            str(made["adapters"]), made["adapters"] / "adapters", backend="onnx", threads=threads
        ),
    }
    found: dict[tuple[str, str, str], list[Any]] = {}
    seconds: dict[str, float] = {}
    for pool_name, build in pools.items():
        pool = build()
        with Stopwatch() as sw:
            for adapter in adapters:
                for domain, domain_texts in texts.items():
                    found[pool_name, adapter, domain] = pool.predict_batch(domain_texts, adapter)
        seconds[pool_name] = round(sw.seconds, 1)
    for name, run in runs.items():
        for label, path, backend in (
            ("merged fp32", run / "merged", "torch"),
            ("merged onnx int8", made[name], "onnx"),
        ):
            predictor = NERPredictor.from_pretrained(path, backend=backend, dtype="fp32", threads=threads)
            for domain, domain_texts in texts.items():
                found[label, name, domain] = predictor.predict_batch(domain_texts)
    rows: dict[str, Any] = {}
    for adapter in adapters:
        for candidate, reference in (
            ("torch int8 base", "fp32"),
            ("onnx int8 base", "fp32"),
            ("merged onnx int8", "merged fp32"),
        ):
            rows[f"{adapter}: {candidate} vs {reference}"] = {
                domain: agreement_of(found[candidate, adapter, domain], found[reference, adapter, domain])
                for domain in texts
            }
    return {"rows": rows, "seconds": seconds}


def targets(rows: dict[str, Any]) -> list[dict[str, Any]]:
    """Each adapter's ONNX Runtime int8 base against fp32 on its own domain, the merged int8 export's
    agreement beside it."""
    checks = []
    for adapter, domain in DOMAINS.items():
        if f"{adapter}: merged onnx int8 vs merged fp32" not in rows:
            continue
        merged = rows[f"{adapter}: merged onnx int8 vs merged fp32"][domain]["entity_f1"]
        checks.append(
            target(
                f"{adapter} adapter, onnx int8 base: entity agreement with fp32 ({domain})",
                rows[f"{adapter}: onnx int8 base vs fp32"][domain]["entity_f1"],
                ">=",
                AGREEMENT_TARGET,
                f"merged onnx int8 vs merged fp32: {merged}",
            )
        )
    return checks


def report(result: dict[str, Any]) -> None:
    table = []
    for name, row in result["rows"].items():
        own = DOMAINS[name.split(":")[0]]
        others = [v for domain, v in row.items() if domain != own]
        mine = row[own]
        table.append(
            [
                name,
                f"{mine['entity_f1']:.4f}",
                f"{mine['same_entities']}/{mine['texts']}",
                f"{others[0]['entity_f1']:.4f}" if others else "-",
            ]
        )
    print_table(
        "Entity agreement with fp32 on trained adapters",
        ["adapter: candidate vs reference", "own domain", "identical texts", "other domain"],
        table,
    )
    print_targets("Trained-adapter agreement targets", result["targets"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phi", type=Path, required=True, help="a quickstart run (adapter/ and merged/)")
    parser.add_argument("--conll", type=Path, default=CACHE_DIR / "accuracy" / "minilm-lora")
    parser.add_argument("--mpnet", type=Path, help="a conll-mpnet-lora run: a CoNLL adapter on MPNet-base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--notes", type=int, default=50)
    parser.add_argument("--sentences", type=int, default=200)
    args = parser.parse_args(argv)
    print(cpu_line())
    ctx = Context(FULL, args.threads, CACHE_DIR, RESULTS_DIR, trained_model=Path(), quick=False)
    runs = {"phi": args.phi, "conll": args.conll}
    texts = texts_by_domain(args.notes, args.sentences)
    sample = [*texts["notes"], *texts["sentences"]]
    made = exports(runs, sample, CACHE_DIR / "trained-adapter-agreement", args.threads)
    result = {"runs": {k: str(v) for k, v in runs.items()}, "texts": {k: len(v) for k, v in texts.items()}}
    result |= measure(runs, texts, made, args.threads)
    if args.mpnet:
        base_size = {"mpnet": args.mpnet}
        sentences = {"sentences": texts["sentences"]}
        made = exports(
            base_size, texts["sentences"], CACHE_DIR / "trained-adapter-agreement", args.threads, "mpnet-"
        )
        measured = measure(base_size, sentences, made, args.threads)
        result["runs"]["mpnet"] = str(args.mpnet)
        result["rows"] |= measured["rows"]
        result["seconds"] |= {f"mpnet {pool}": seconds for pool, seconds in measured["seconds"].items()}
    result["targets"] = targets(result["rows"])
    report(result)
    write_result(ctx, "trained_adapter_agreement", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
