"""The cost of the Presidio and spaCy bridges over calling the predictor directly: texts/s for the same
notes through the same model, in one run.

    flock /tmp/loraner-cpu.lock .venv/bin/python -m bench.integrations --model .demo/quickstart/merged
    ... --texts sentences     # CoNLL-2003 test sentences (from ../shared; generated ones without it)

Texts (``--count``, 300): generated clinical notes (``loraner data synth``'s generator with its own
seed: the quickstart model's kind of text), or short sentences, where per-call costs weigh most.
Rows, interleaved once per repeat in a rotating order; the table shows medians, and each ratio is
taken within a repeat (then the median):

- ``predictor``: ``NERPredictor.predict_batch(notes)``, the baseline;
- ``predictor one at a time``: ``NERPredictor.predict(note)`` per note: with ``predictor``, the gain of
  batching in the model itself, the ceiling of what batching through any bridge can gain;
- ``presidio one at a time``: ``AnalyzerEngine.analyze`` per note, a registry holding only the loraner
  recognizer (over ``LoranerNlpEngine``);
- ``presidio batch``: Presidio's ``BatchAnalyzerEngine.analyze_iterator`` over the same analyzer;
- ``presidio batch + patterns``: the same with Presidio's pattern recognizers in the registry (their
  cost, not the bridge's: no target);
- ``spacy pipe`` (``alignment_mode: expand``, the default) and ``spacy pipe, split``: ``nlp.pipe`` on
  ``spacy.blank("en")`` with ``loraner_ner``.

Both bridges run with their defaults: ``LoranerNlpEngine.texts_per_batch`` texts per ``predict_batch``
for Presidio, ``nlp.pipe``'s own batch size (``nlp.batch_size``, 1,000) for spaCy.

Checks the entities of every bridge against the predictor's (Presidio: type, offsets, score; spaCy
``split``: ``doc.ents`` exactly) and writes ``bench/results/integrations-TEXTS.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # Presidio's e-mail check: no download

from bench.lib.common import (
    RESULTS_DIR,
    _jsonable,
    cpu_line,
    load_average,
    machine_info,
    median,
    print_table,
    print_targets,
    ratio,
    target,
)

WARM_UP_TEXTS = 32
BASELINE = "predictor"
UNBATCHED = "predictor one at a time"


def texts_for(kind: str, count: int, seed: str, tokenizer: Any) -> tuple[list[str], str]:
    """``count`` generated clinical notes, or CoNLL-2003 test sentences (Few-NERD-like lengths)."""
    if kind == "sentences":
        from bench.lib.data import sentence_set

        chosen = sentence_set(tokenizer, count, seed=sum(map(ord, seed)))
        return chosen.texts, chosen.source
    from loraner.data.synth import generate_notes

    return [note.text for note in generate_notes(count, seed)], f"loraner data synth notes, seed {seed!r}"


def build_runners(
    model: Path, backend: str, dtype: str, threads: int
) -> tuple[dict[str, Callable], Any, dict[str, int]]:
    """Each row's work (a function of the texts returning what it found), the loraner recognizer, and
    each bridge's texts per predict_batch."""
    import spacy
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry

    from loraner.inference import NERPredictor
    from loraner.integrations.presidio import LoranerNlpEngine, LoranerRecognizer

    # threads: PyTorch's are per process, so the spaCy component's predictor runs with them too
    predictor = NERPredictor.from_pretrained(model, backend, dtype=dtype, threads=threads)
    recognizer = LoranerRecognizer(predictor=predictor)
    engine = LoranerNlpEngine([recognizer])  # its default texts per predict_batch
    analyzer = AnalyzerEngine(registry=RecognizerRegistry(recognizers=[recognizer]), nlp_engine=engine)
    patterns = RecognizerRegistry()
    patterns.load_predefined_recognizers()
    patterns.remove_recognizer("SpacyRecognizer")
    patterns.add_recognizer(recognizer)
    with_patterns = AnalyzerEngine(registry=patterns, nlp_engine=engine)
    pipelines = {}
    for mode in ("expand", "split"):
        nlp = spacy.blank("en")
        config = {"model": str(model), "backend": backend, "dtype": dtype, "alignment_mode": mode}
        nlp.add_pipe("loraner_ner", config=config)
        pipelines[mode] = nlp
    runners = {
        BASELINE: predictor.predict_batch,
        UNBATCHED: lambda notes: [predictor.predict(n) for n in notes],
        "presidio one at a time": lambda notes: [analyzer.analyze(n, language="en") for n in notes],
        "presidio batch": lambda notes: BatchAnalyzerEngine(analyzer).analyze_iterator(notes, language="en"),
        "presidio batch + patterns": lambda notes: BatchAnalyzerEngine(with_patterns).analyze_iterator(
            notes, language="en"
        ),
        # nlp.pipe's own batch size (nlp.batch_size, 1000 unless configured): one predict_batch per batch
        "spacy pipe": lambda notes: list(pipelines["expand"].pipe(notes)),
        "spacy pipe, split": lambda notes: list(pipelines["split"].pipe(notes)),
    }
    batches = {"presidio": engine.texts_per_batch, "spacy": pipelines["expand"].batch_size}
    return runners, recognizer, batches


def same_entities(name: str, found: Any, expected: list[list[Any]], recognizer: Any) -> int | None:
    """How many texts got the predictor's entities through the row: the same types and offsets, scores
    within 1e-4 (one text per forward pass rounds differently from a padded batch). None: not compared."""
    if name == BASELINE:
        return len(expected)
    if name == UNBATCHED:
        rows = [[(e.start, e.end, e.type, e.score) for e in es] for es in found]
        want = [[(e.start, e.end, e.type, e.score) for e in es] for es in expected]
    elif name.startswith("presidio") and "patterns" not in name:
        rows = [sorted((r.start, r.end, r.entity_type, r.score) for r in results) for results in found]
        want = [
            sorted((e.start, e.end, recognizer.entity_mapping[e.type], e.score) for e in es)
            for es in expected
        ]
    elif name == "spacy pipe, split":
        rows = [[(s.start_char, s.end_char, s.label_, s._.loraner_score) for s in doc.ents] for doc in found]
        want = [[(e.start, e.end, e.type, e.score) for e in es] for es in expected]
    else:
        return None
    return sum(_same(a, b) for a, b in zip(rows, want, strict=True))


def gain(unbatched: list[float], batched: list[float]) -> float:
    """The median over repeats of the unbatched row's time over the batched row's."""
    return median([ratio(u, b) for u, b in zip(unbatched, batched, strict=True)])


def _same(found: list[tuple], want: list[tuple]) -> bool:
    return [f[:3] for f in found] == [w[:3] for w in want] and all(
        abs(f[3] - w[3]) <= 1e-4 for f, w in zip(found, want, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Presidio and spaCy bridges vs the predictor alone")
    parser.add_argument("--model", type=Path, default=Path(".demo/quickstart/merged"))
    parser.add_argument("--texts", choices=("notes", "sentences"), default="notes")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", default="bench-integrations")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--output", type=Path, help="default: bench/results/integrations-TEXTS.json")
    args = parser.parse_args()
    if not args.model.exists():
        parser.error(f"{args.model}: no model (make demo, or loraner train configs/quickstart.yaml)")

    print(cpu_line(), flush=True)
    runners, recognizer, batches = build_runners(args.model, args.backend, args.dtype, args.threads)
    notes, source = texts_for(args.texts, args.count, args.seed, recognizer.predictor.tokenizer)
    print(f"{len(notes)} texts: {source}; texts per predict_batch: {batches}", flush=True)
    expected = runners[BASELINE](notes)
    for run in runners.values():  # warm-up: kernels chosen, caches filled
        run(notes[:WARM_UP_TEXTS])
    names = list(runners)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    agreement: dict[str, int | None] = {}
    for repeat in range(args.repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            start = time.perf_counter()
            found = runners[name](notes)
            seconds[name].append(time.perf_counter() - start)
            if repeat == 0:
                agreement[name] = same_entities(name, found, expected, recognizer)
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)

    base = seconds[BASELINE]
    rows, summary = [], {}
    for name in names:
        rate = len(notes) / median(seconds[name])
        over = median([s / b - 1 for s, b in zip(seconds[name], base, strict=True)])
        summary[name] = {
            "seconds": seconds[name],
            "texts_per_s": round(rate, 2),
            "cost_over_predictor": round(over, 4),
            "notes_with_identical_entities": agreement[name],
        }
        same = "-" if agreement[name] is None else f"{agreement[name]}/{len(notes)}"
        rows.append([name, rate, f"{over * 100:+.1f} %", same])
    print_table(
        f"{len(notes)} {args.texts}, {args.threads} threads, {args.backend} {args.dtype}, "
        f"median of {args.repeats}",
        ["row", "texts/s", "time over predictor", "identical entities"],
        rows,
    )
    batch_gain = gain(seconds["presidio one at a time"], seconds["presidio batch"])
    # What batching gains inside the model on these texts: no bridge's batching can gain more.
    ceiling = gain(seconds[UNBATCHED], seconds[BASELINE])
    checks = [
        target(
            "presidio batch / one at a time",
            batch_gain,
            ">=",
            5.0,
            note=f"ceiling: predictor batch / one at a time {ceiling:.2f}x",
        ),
        target(
            "presidio batch: time over predictor",
            summary["presidio batch"]["cost_over_predictor"],
            "<=",
            0.10,
        ),
        target("spacy pipe: time over predictor", summary["spacy pipe"]["cost_over_predictor"], "<=", 0.10),
        target(
            "identical entities (presidio, spacy split)",
            min(agreement[n] or 0 for n in ("presidio batch", "presidio one at a time", "spacy pipe, split"))
            / len(notes),
            ">=",
            1.0,
        ),
    ]
    print_targets("targets", checks)
    print(cpu_line(), flush=True)
    output = args.output or RESULTS_DIR / f"integrations-{args.texts}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "workload": "integrations",
        "model": str(args.model),
        "texts": {
            "kind": args.texts,
            "count": len(notes),
            "source": source,
            "characters": sum(map(len, notes)),
        },
        "seed": args.seed,
        "repeats": args.repeats,
        "backend": args.backend,
        "dtype": args.dtype,
        "texts_per_predict_batch": batches,
        "machine": machine_info(args.threads),
        "load_average_at_end": load_average(),
        "rows": summary,
        "presidio_batch_vs_one_at_a_time": round(batch_gain, 3),
        "predictor_batch_vs_one_at_a_time": round(ceiling, 3),
        "targets": checks,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    output.write_text(json.dumps(body, indent=2, default=_jsonable), encoding="utf-8")
    print(f"wrote {output}", flush=True)


if __name__ == "__main__":
    main()
