"""Training variants in a process of their own (``python -m bench.lib.train_worker SPEC.json``), so each
one's peak RSS is its own; SPEC.json may also hold a list of specs, trained one after another in this
one process (quick mode: a start-up per variant saved; no peak RSS is then reported). Prints nothing
useful; writes the result JSON named in each spec.

Variants (the same LoRA model, examples, hyperparameters and threads; only the recipe differs):

* ``C``: the clinical reference recipe: every sequence padded to 256 tokens, random batches.
* ``D``: the usual recipe: Trainer + PEFT + ``DataCollatorForTokenClassification`` (dynamic padding),
  random batches.
* ``loraner``: loraner's recipe: ``loraner.train.trainer.training_arguments``, ``WindowTrainer`` with
  its default batching (length buckets) and the collator ``loraner.train.trainer.train`` uses.
* ``loraner+compile``: the same with ``torch_compile=True`` (a probe: is compiling worth it on this CPU?).
* ``loraner-bf16``, ``loraner-auto``: loraner's recipe with ``mixed_precision: bf16`` (autocast) and
  ``auto`` (bf16 only where the CPU has native bf16); ``loraner`` itself is ``mixed_precision: no``.
  Both keep the frozen base in bf16 under autocast (``training.frozen_base: auto``).
* ``loraner-bf16-fp32base``: ``loraner-bf16`` with ``frozen_base: fp32``: autocast casts the frozen
  weights to bf16 in every step (the baseline of ``frozen_base``).

With ``eval_examples`` the trained model is scored as ``loraner train`` validates: by
:func:`loraner.eval.evaluate.evaluate` over an ``NERPredictor`` on a ``TorchBackend`` of the model, so
every recipe is scored on the entities the served model would return.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

PAD_TO = 256
VARIANTS = ("C", "D", "loraner", "loraner+compile", "loraner-bf16", "loraner-bf16-fp32base", "loraner-auto")
# every other variant: fp32
PRECISION = {"loraner-bf16": "bf16", "loraner-bf16-fp32base": "bf16", "loraner-auto": "auto"}
FROZEN_BASE = {"loraner-bf16-fp32base": "fp32"}  # every other variant: auto


@dataclass(frozen=True)
class Spec:
    variant: str
    model: str
    examples: str  # JSON file: [{"tokens": [...], "tags": [...]}]
    labels: list[str]
    out: str
    batch_size: int = 16
    threads: int = 2
    seed: int = 0
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.1
    max_length: int = 256
    max_steps: int = -1  # -1: one epoch
    batching: str | None = None  # loraner variants: None takes TrainingConfig's default
    eval_examples: str | None = None


class CountingCollator:
    """Wraps a collator and counts real and padded tokens of every batch it builds."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.real = 0
        self.padded = 0
        self.rows: list[int] = []  # samples per batch, in training order

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        batch = self.inner(features)
        self.rows.append(len(features))
        self.padded += int(batch["input_ids"].numel())
        self.real += int(batch["attention_mask"].sum())
        return batch


def step_timer() -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall-clock time of every optimizer step, data loading and collation included."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self.last = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.last = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            now = time.perf_counter()
            self.times.append(now - self.last)
            self.last = now

    return StepTimer()


def read_examples(path: str) -> list[Any]:
    from loraner.types import WordExample

    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    return [WordExample(tokens=r["tokens"], tags=r["tags"], id=str(i)) for i, r in enumerate(rows)]


def lora_settings() -> Any:
    from loraner.settings import LoraSettings

    return LoraSettings(r=16, alpha=32, dropout=0.1, target_modules=["query", "value"], bias="none")


def experiment_config(spec: Spec) -> Any:
    """The ``loraner train`` config of this run: word-level (CoNLL-style) data, the spec's model,
    window and hyperparameters, one epoch."""
    from loraner.settings import DataConfig, ExperimentConfig, ModelConfig, TrainingConfig

    return ExperimentConfig(
        data=DataConfig(format="conll"),
        model=ModelConfig(name_or_path=spec.model, max_length=spec.max_length),
        lora=lora_settings(),
        training=TrainingConfig(
            epochs=1,
            batch_size=spec.batch_size,
            learning_rate=spec.learning_rate,
            warmup_ratio=spec.warmup_ratio,
            seed=spec.seed,
            threads=spec.threads,
            mixed_precision=PRECISION.get(spec.variant, "no"),
            frozen_base=FROZEN_BASE.get(spec.variant, "auto"),
            max_steps=spec.max_steps,
        ),
    )


def loraner_args(spec: Spec, out: Path, n_train: int, compile_: bool) -> Any:
    from loraner.train.trainer import training_arguments

    args = training_arguments(experiment_config(spec), out, n_train)
    # The timed run only trains: per-epoch evaluation and checkpoints are not part of step speed.
    extra = {"torch_compile": True} if compile_ else {}
    return replace(
        args,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        logging_strategy="no",
        disable_tqdm=True,
        **extra,
    )


def usual_args(spec: Spec, out: Path, n_train: int) -> Any:
    """Baselines C and D: a plain TrainingArguments with the same hyperparameters, random batches."""
    from transformers import TrainingArguments

    steps = spec.max_steps if spec.max_steps > 0 else math.ceil(n_train / spec.batch_size)
    return TrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=1,
        max_steps=spec.max_steps,
        per_device_train_batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        warmup_steps=math.ceil(spec.warmup_ratio * steps),
        weight_decay=0.01,
        lr_scheduler_type="linear",
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        seed=spec.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        train_sampling_strategy="random",
    )


def collator_for(variant: str, tokenizer: Any) -> CountingCollator:
    from transformers import DataCollatorForTokenClassification

    if variant == "C":
        return CountingCollator(
            DataCollatorForTokenClassification(tokenizer, padding="max_length", max_length=PAD_TO)
        )
    # D and loraner: what loraner.train.trainer.train passes (dynamic padding to the batch's longest).
    return CountingCollator(DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=None))


def window_steps(variant: str, n_train: int, batch_size: int, steps: int) -> int:
    """Steps per timing window.

    Batches in random order (D, and loraner's length-bucketed batches): four windows. Padded to 256:
    every step costs the same, one step per window.
    """
    if variant == "C":
        return 1
    return max(1, steps // 4)


def windows(times: list[float], sizes: list[int], width: int) -> list[float]:
    """Samples per second of each full window of ``width`` steps."""
    out = []
    for at in range(0, len(times) - width + 1, width):
        out.append(sum(sizes[at : at + width]) / sum(times[at : at + width]))
    return out


def train(spec: Spec) -> dict[str, Any]:
    import torch
    from transformers import Trainer, set_seed

    from loraner import defaults
    from loraner.inference.backends import load_token_classifier
    from loraner.modeldir import load_tokenizer
    from loraner.train.model import count_parameters, wrap_with_lora
    from loraner.train.trainer import (
        WindowTrainer,
        batching_options,
        cast_frozen,
        resolve_frozen_base,
        restore_frozen_fp32,
        window_dataset,
    )

    torch.set_num_threads(spec.threads)
    set_seed(spec.seed)
    tokenizer = load_tokenizer(spec.model)
    label2id = {label: i for i, label in enumerate(spec.labels)}
    examples = read_examples(spec.examples)
    train_set = window_dataset(examples, tokenizer, label2id, spec.max_length, defaults.STRIDE.value)
    n_train = len(train_set)
    model = wrap_with_lora(load_token_classifier(spec.model, spec.labels), lora_settings())
    collator = collator_for(spec.variant, tokenizer)
    timer = step_timer()
    with tempfile.TemporaryDirectory(prefix="loraner-bench-") as tmp:
        if spec.variant.startswith("loraner"):
            args = loraner_args(spec, Path(tmp), n_train, compile_=spec.variant.endswith("compile"))
        else:
            args = usual_args(spec, Path(tmp), n_train)
        # loraner: its own Trainer subclass, with the batching its training config defaults to.
        loraner = spec.variant.startswith("loraner")
        trainer_class = WindowTrainer if loraner else Trainer
        training = experiment_config(spec).training
        if spec.batching is not None:
            training = training.model_copy(update={"batching": spec.batching})
        extra = batching_options(training) if loraner else {}
        cpu_autocast = bool(args.bf16) and not torch.cuda.is_available()
        frozen = resolve_frozen_base(training.frozen_base, True, cpu_autocast) if loraner else "fp32"
        if frozen == "bf16":
            cast_frozen(model, torch.bfloat16)
        trainer = trainer_class(
            model=model,
            args=args,
            train_dataset=train_set,
            data_collator=collator,
            callbacks=[timer],
            **extra,
        )
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    sizes = collator.rows[: len(timer.times)]
    # What the model computed: loraner's length chunks trim padding after the collator.
    computed, real = (
        (trainer.computed_tokens, trainer.real_tokens) if loraner else (collator.padded, collator.real)
    )
    width = window_steps(spec.variant, n_train, spec.batch_size, len(timer.times))
    rates = windows(timer.times, sizes, width)
    result: dict[str, Any] = {
        "variant": spec.variant,
        "model": spec.model,
        "samples": n_train,
        "steps": len(timer.times),
        "window_steps": width,
        "window_samples_per_s": [round(r, 3) for r in rates],
        "samples_per_s": round(sorted(rates)[len(rates) // 2], 3) if rates else None,
        "first_step_seconds": round(timer.times[0], 2) if timer.times else None,
        "train_seconds": round(seconds, 2),
        "padding_share": round(1 - real / computed, 4) if computed else None,
        "tokens_per_step": round(computed / max(1, len(timer.times)), 1),
        "trainable_parameters": count_parameters(model).trainable,
        "batching": training.batching if loraner else str(args.train_sampling_strategy),
        "torch_compile": bool(getattr(args, "torch_compile", False)),
        "bf16_autocast": bool(args.bf16),
        "frozen_base": frozen,
    }
    if spec.eval_examples:
        # Scored as served, like loraner train's test score: fp32 weights, no autocast wrapper left.
        served = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
        if frozen == "bf16":
            restore_frozen_fp32(served, spec.model, list(spec.labels))
        result["evaluation"] = evaluate(served, tokenizer, spec)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """This process's peak RSS. /proc's VmHWM starts afresh at exec; ``ru_maxrss`` would also count the
    parent's memory that the forked child shared before it exec'd."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def predictor_for(model: Any, tokenizer: Any, spec: Spec) -> Any:
    """The predictor ``loraner.train.trainer.train`` validates with."""
    from loraner.train.trainer import model_meta, validation_predictor

    cfg = experiment_config(spec)
    # The base-model fingerprint only matters for loading an adapter later, not for scoring.
    meta = model_meta(cfg, list(spec.labels), {})
    return validation_predictor(model, tokenizer=tokenizer, meta=meta, cfg=cfg)


def evaluate(model: Any, tokenizer: Any, spec: Spec) -> dict[str, Any]:
    """loraner's own evaluation path; per sentence, the gold spans and the predicted entities are kept
    (``[start, end, type]``) for the paired bootstrap."""
    from loraner.eval.evaluate import evaluate as evaluate_predictor

    examples = read_examples(str(spec.eval_examples))
    ev = evaluate_predictor(predictor_for(model, tokenizer, spec), examples)
    return {
        "f1": ev.metrics["f1"],
        "gold": [[[s.start, s.end, s.label] for s in ex.spans] for ex in ev.examples],
        "pred": [[[e.start, e.end, e.type] for e in entities] for entities in ev.predictions],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    raw = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    specs = [Spec(**item) for item in (raw if isinstance(raw, list) else [raw])]
    for spec in specs:
        if spec.variant not in VARIANTS:
            raise SystemExit(f"variant {spec.variant!r} is not one of {', '.join(VARIANTS)}")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    for spec in specs:
        try:
            result = train(spec)
        except Exception as exc:  # a failed variant (e.g. torch.compile without a compiler) is a result too
            result = {"variant": spec.variant, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        if len(specs) > 1:  # the process's peak is every variant's so far, not this one's
            result |= {"peak_rss_mb": None, "own_process": False}
        Path(spec.out).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
