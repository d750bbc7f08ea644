"""The engine's own time per sentence: end to end minus the model, on any CPU (issue 27's target).

    python -m bench.scripts.outside_model [--sentences 300] [--repeats 7] [--profile] [--out FILE]

``NERPredictor.predict_batch`` at its defaults (batches of 16 length-sorted windows, at most 512 padded
tokens) on the inference workload's CoNLL-2003 test sentences, over a 2-layer RoBERTa built from a
config with the bench's tokenizer and its 133 Few-NERD labels (random weights, as the bench model's, so
about as many entities). The time inside each model call is clocked (``TimedBackend``) and taken from
the end-to-end time of the same run: what remains is tokenization, windows, padding, decoding to
entities with character offsets: single-threaded Python and numpy and the Rust tokenizer, which take
about as long on any x86 server core of this clock, where the model's share does not. Both word splits
run: ``tokenizer`` (the inference workload's predictors) and ``conll`` (a model trained on CoNLL).

The table shows the median over repeats (interleaved) and the share that time would be at the model-only
rate issue 27 measured on an AMX Xeon (``AMX_MODEL_ONLY_SENTENCES_PER_S``: derived, not measured here).
``--profile``: cProfile of the ``tokenizer`` split, the 25 most expensive functions.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.lib.common import (
    TimedBackend,
    cpu_line,
    default_tokenizer,
    load_average,
    machine_info,
    median,
    print_table,
)
from bench.lib.data import sentence_set
from bench.lib.models import build_torch_model, fewnerd_labels
from bench.workloads.inference import AMX_MODEL_ONLY_SENTENCES_PER_S, share_at_amx_rate

WORD_SPLITS = ("tokenizer", "conll")
WARMUP_TEXTS = 8


def predictors(model_dir: Path) -> dict[str, Any]:
    """One predictor per word split over the tiny model, each behind its own clock (torch, 1 thread)."""
    import torch
    from transformers import AutoModelForTokenClassification

    from loraner.inference import NERPredictor, TorchBackend
    from loraner.modeldir import load_tokenizer

    torch.set_num_threads(1)
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir)).eval()
    tokenizer = load_tokenizer(model_dir)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return {
        split: NERPredictor(tokenizer, TimedBackend(TorchBackend(model)), labels, word_split=split)
        for split in WORD_SPLITS
    }


def measure(runs: dict[str, Any], texts: list[str], repeats: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {split: {"e2e": [], "model": [], "entities": 0} for split in runs}
    for predictor in runs.values():
        predictor.predict_batch(texts[:WARMUP_TEXTS])
    for _ in range(repeats):
        for split, predictor in runs.items():
            clock = predictor.backend
            clock.seconds = 0.0
            started = time.perf_counter()
            found = predictor.predict_batch(texts)
            out[split]["e2e"].append(time.perf_counter() - started)
            out[split]["model"].append(clock.seconds)
            out[split]["entities"] = sum(map(len, found))
    return out


def rows(measured: dict[str, dict[str, Any]], n: int) -> list[dict[str, Any]]:
    table = []
    for split, m in measured.items():
        outside = [1000 * (e - s) / n for e, s in zip(m["e2e"], m["model"], strict=True)]
        ms = median(outside)
        table.append(
            {
                "word_split": split,
                "outside_model_ms_per_sentence": round(ms, 4),
                "outside_ms_per_repeat": [round(x, 4) for x in outside],
                "model_ms_per_sentence": round(1000 * median(m["model"]) / n, 4),
                "share_at_amx_rate": round(share_at_amx_rate(ms), 4),
                "entities": m["entities"],
            }
        )
    return table


def profile(predictor: Any, texts: list[str], repeats: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeats):
        predictor.predict_batch(texts)
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tokenizer", type=Path, default=default_tokenizer())
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--label", default="", help="a name for this run in the table and the JSON")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)

    import loraner

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_torch_model(Path(tmp) / "tiny", True, fewnerd_labels(), args.tokenizer)
        runs = predictors(model_dir)
        texts = sentence_set(runs["tokenizer"].tokenizer, args.sentences).texts
        if args.profile:
            profile(runs["tokenizer"], texts, args.repeats)
            return
        table = rows(measure(runs, texts, args.repeats), len(texts))
    title = (
        f"Outside the model {args.label}: {len(texts)} CoNLL test sentences, {args.repeats} repeats, "
        f"{cpu_line()} (share: derived at the AMX Xeon's {AMX_MODEL_ONLY_SENTENCES_PER_S:g} sent/s "
        "model only)"
    )
    print_table(
        title,
        [
            "word split",
            "ms/sentence outside",
            "per repeat",
            "model ms/sentence (tiny)",
            "share at AMX",
            "entities",
        ],
        [
            [
                r["word_split"],
                f"{r['outside_model_ms_per_sentence']:.3f}",
                " ".join(f"{x:.3f}" for x in r["outside_ms_per_repeat"]),
                f"{r['model_ms_per_sentence']:.3f}",
                f"{100 * r['share_at_amx_rate']:.1f}%",
                r["entities"],
            ]
            for r in table
        ],
    )
    if args.out:
        body = {
            "label": args.label,
            "loraner": str(Path(loraner.__file__).parent),
            "machine": machine_info(1),
            "load_average_at_end": load_average(),
            "sentences": len(texts),
            "rows": table,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(body, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
