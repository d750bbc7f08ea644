"""LoRA (or full) fine-tuning with the Hugging Face Trainer, driven by an :class:`ExperimentConfig`.

Validation after each epoch, the "before" and the test scores all go through the inference engine
(:func:`loraner.eval.evaluate.evaluate` over a :class:`~loraner.inference.TorchBackend` wrapping the
model being trained), so every number describes the entities the served model returns.

Several processes (``torchrun``/``accelerate launch``, see docs/scale-out.md): every rank trains on its
own share of the batches (loraner.train.sampling) and DDP averages the gradients. Evaluation runs on
rank 0 alone, on whole documents, and rank 0 sends the scores to the others (best-epoch selection needs
them everywhere): sharding it would need every rank's entity counts merged, and would still give the
same numbers as one process, only sooner. Rank 0 alone also scores "before" and test and saves the model;
the others wait at a barrier.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    DataCollatorForTokenClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from loraner.data import load_splits, reader_unit
from loraner.data.alignment import IGNORE, encode_examples, special_tokens, window_features, windows_for
from loraner.errors import ConfigError
from loraner.eval.evaluate import Evaluation, evaluate
from loraner.inference.backends import TorchBackend, load_token_classifier, native_bf16
from loraner.inference.predictor import NERPredictor
from loraner.modeldir import (
    ADAPTER_DIR,
    HEAD_MODULE,
    MERGED_DIR,
    ModelDir,
    ModelMeta,
    base_fingerprint,
    make_readable,
    write_meta,
)
from loraner.settings import Batching, ExperimentConfig, TrainingConfig
from loraner.train import distributed
from loraner.train.chunking import split_batch
from loraner.train.model import ParamCounts, count_parameters, wrap_with_lora
from loraner.train.sampling import LengthBucketSampler, RandomBatches
from loraner.types import Example, Splits, entity_types, iob2_labels

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
# Written into a checkpoint after everything else in it: a checkpoint without it was torn (the run
# stopped while saving) and is never resumed from.
CHECKPOINT_MARKER = "loraner-complete.json"
BEFORE_FILE = "before.json"  # the "before" scores, kept so a resumed run need not evaluate again
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


class MarkCompleteCheckpoints(TrainerCallback):
    """Writes :data:`CHECKPOINT_MARKER` into each checkpoint once the Trainer has finished saving it."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        # One writer: every rank of a distributed run gets on_save, and the checkpoint is rank 0's.
        if state.is_world_process_zero and checkpoint.is_dir():
            _write_atomically(
                checkpoint / CHECKPOINT_MARKER, {"step": state.global_step, "epoch": state.epoch}
            )
        return control


def _write_atomically(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def resume_checkpoint(checkpoints: Path) -> Path:
    """The newest complete checkpoint under ``checkpoints``; torn ones (no marker) are skipped with a
    warning. None to resume from is an error that says what was found."""
    found = sorted(
        (int(m.group(1)), p)
        for p in (checkpoints.iterdir() if checkpoints.is_dir() else [])
        if p.is_dir() and (m := _CHECKPOINT_NAME.match(p.name))
    )
    for _, path in reversed(found):
        if (path / CHECKPOINT_MARKER).is_file():
            return path
        log.warning(
            "%s is incomplete (no %s: the run stopped while saving it); skipped", path, CHECKPOINT_MARKER
        )
    if found:
        raise ConfigError(
            f"--resume: no complete checkpoint under {checkpoints} ({len(found)} found, all torn); "
            "train again without --resume"
        )
    raise ConfigError(
        f"--resume: nothing to resume: no checkpoint under {checkpoints}; train without --resume"
    )


PredictorFor = Callable[[Any], NERPredictor]


@dataclass
class TrainResult:
    config: ExperimentConfig
    meta: ModelMeta
    params: ParamCounts
    before: dict[str, Any] | None
    test: Evaluation | None
    validation: dict[str, Any] | None
    epochs: list[dict[str, Any]]
    timing: dict[str, float | str]

    @property
    def labels(self) -> list[str]:
        return self.meta.labels


class WindowDataset:
    """A list of window features; :class:`LengthBucketSampler` groups them by ``input_ids`` length."""

    def __init__(self, features: Sequence[dict[str, list[int]]]) -> None:
        self.features = list(features)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.features[i]

    def lengths(self) -> list[int]:
        return [len(f["input_ids"]) for f in self.features]


def window_dataset(
    examples: Sequence[Example],
    tokenizer: Any,
    label2id: dict[str, int],
    max_length: int,
    stride: int,
    label_all_subwords: bool = False,
) -> WindowDataset:
    """Training windows of ``examples`` with their labels (see :mod:`loraner.data.alignment`)."""
    specials = special_tokens(tokenizer)
    docs = encode_examples(examples, tokenizer, label2id, label_all_subwords)
    windows = windows_for(docs, max_length, stride, specials)
    return WindowDataset([window_features(docs[w.doc], w, specials) for w in windows])


def labelled_tokens_per_batch(dataset: Any, batch_size: int) -> float:
    """Mean number of scored (label != -100) tokens per training batch; 0 when unknown."""
    if not isinstance(dataset, WindowDataset) or not len(dataset):
        return 0.0
    labelled = sum(sum(1 for y in f["labels"] if y != IGNORE) for f in dataset.features)
    return labelled / math.ceil(len(dataset) / batch_size)


def summed_token_loss(model: Any, inputs: dict[str, Any], with_outputs: bool = False) -> Any:
    """Cross-entropy summed over the labelled (!= -100) tokens; the caller chooses the divisor."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    outputs = model(**inputs)
    logits = outputs.logits
    summed = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return (summed, outputs) if with_outputs else summed


def batching_options(training: TrainingConfig) -> dict[str, Any]:
    """The :class:`WindowTrainer` keyword arguments of a training config's batching settings."""
    return {
        "batching": training.batching,
        "bucket_batches": training.length_bucket_batches,
        "chunk_overhead_tokens": training.chunk_overhead_tokens,
        "head_learning_rate": training.head_learning_rate,
    }


def is_head_parameter(name: str) -> bool:
    return HEAD_MODULE in name.split(".")


def labels_for(splits: Splits) -> list[str]:
    """The label list: every type of every split. A type that is absent from the training split cannot
    be learned (its test scores will be 0): said loudly, once per split."""
    types = entity_types(splits)
    if not types:
        raise ConfigError("the data has no entities in any split: nothing to learn")
    trained = set(entity_types({"train": splits.get("train", [])}))
    if not trained:
        raise ConfigError("the 'train' split has no entities: nothing to learn")
    for name, examples in splits.items():
        unseen = sorted(set(entity_types({name: examples})) - trained)
        if name != "train" and unseen:
            message = f"types in the '{name}' split but not in 'train' cannot be learned: {', '.join(unseen)}"
            log.warning(message)
            warnings.warn(message, UserWarning, stacklevel=2)
    return iob2_labels(types)


class WindowTrainer(Trainer):
    """The Trainer with loraner's batching and with ``evaluate`` scoring through the inference engine.

    Why the evaluation: the stock loop scores windows, not documents, and (transformers v5) reorders
    evaluation batches by length when length grouping is on. Scoring the predictor's entities on the
    validation examples gives per-epoch numbers computed as the served model's, and feeds
    best-checkpoint selection.
    """

    def __init__(
        self,
        *args: Any,
        eval_examples: Sequence[Example] = (),
        predictor_for: PredictorFor | None = None,
        batching: Batching = "random",
        bucket_batches: int = 8,
        chunk_overhead_tokens: int = 32,
        head_learning_rate: float | None = None,
        **kwargs: Any,
    ):
        if predictor_for is not None:
            # Trainer refuses per-epoch evaluation without an eval dataset: ours are the examples.
            kwargs.setdefault("eval_dataset", list(eval_examples))
        super().__init__(*args, **kwargs)
        self.eval_examples = list(eval_examples)
        self.predictor_for = predictor_for
        self.batching = batching
        self.bucket_batches = bucket_batches
        self.chunk_overhead_tokens = chunk_overhead_tokens
        self.head_learning_rate = head_learning_rate
        self.computed_tokens = 0  # positions run through the model in training steps, padding included
        self.real_tokens = 0
        self.tokens_per_batch = (
            labelled_tokens_per_batch(self.train_dataset, self.args.train_batch_size)
            if batching == "length_buckets"
            else 0.0
        )
        if self.tokens_per_batch:
            # compute_loss below replaces the model's loss and does not know about accumulation:
            # Trainer must divide it by the accumulation steps.
            self.loss_is_scaled_for_ga = False
        else:
            # compute_loss divides the summed loss by the labelled tokens of the whole accumulated batch on
            # every process (Trainer counts them only for models that take loss kwargs: make it count).
            # Token-classification models take the kwargs but ignore them and return their batch mean, which
            # Trainer then treats as already scaled: the gradient grew with the accumulation steps and the
            # number of processes.
            self.model_accepts_loss_kwargs = True
            self.loss_is_scaled_for_ga = True

    def create_optimizer(self, model: Any = None) -> Any:
        """The stock optimizer; with ``head_learning_rate`` the classification head's parameters move to
        groups of their own at that rate (before the scheduler is made, so its schedule scales both)."""
        optimizer = super().create_optimizer(model)
        if self.head_learning_rate is None:
            return optimizer
        head = {id(p) for n, p in (model or self.model).named_parameters() if is_head_parameter(n)}
        for group in list(optimizer.param_groups):
            moved = [p for p in group["params"] if id(p) in head]
            if moved:
                group["params"] = [p for p in group["params"] if id(p) not in head]
                optimizer.add_param_group({**group, "params": moved, "lr": self.head_learning_rate})
        return optimizer

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        """``length_chunks``: the random batch run as length-sorted chunks (loraner.train.chunking),
        each chunk's summed loss divided by the whole batch's labelled tokens, so the gradient is
        the unchunked batch's. Other modes: the stock step."""
        mask = inputs.get("attention_mask")
        if self.batching != "length_chunks" or mask is None or "labels" not in inputs:
            self._count_tokens(mask)
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        # Trainer counts the labelled tokens of all accumulated batches when the model takes loss
        # kwargs; otherwise this batch's mean is divided by the accumulation steps, as stock does.
        whole = num_items_in_batch is not None
        count = num_items_in_batch if whole else inputs["labels"].ne(-100).sum()
        divisor = count.clamp(min=1) if hasattr(count, "clamp") else max(count, 1)
        total = 0.0
        # Cut on the collated (host) batch, so counting tokens never waits for a device.
        chunks = split_batch(inputs, self.chunk_overhead_tokens)
        for i, chunk in enumerate(chunks):
            self._count_tokens(chunk["attention_mask"])
            chunk = self._prepare_inputs(chunk)
            with self.compute_loss_context_manager():
                loss = summed_token_loss(model, chunk) / divisor
            if not whole:
                loss = loss / self.current_gradient_accumulation_steps
            elif self.args.average_tokens_across_devices:
                # The count is summed over processes and DDP averages gradients: undo the average.
                loss = loss * self.accelerator.num_processes
            # Under DDP only the last chunk's backward should all-reduce the gradients.
            last = i == len(chunks) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(model):
                self.accelerator.backward(loss)
            total = total + loss.detach()
        return total

    def _count_tokens(self, mask: Any) -> None:
        """Positions computed (padding included) and real ones, from a host-side attention mask."""
        if mask is not None:
            self.computed_tokens += mask.numel()
            self.real_tokens += int(mask.sum())

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """``length_buckets``: cross-entropy summed over the batch's labelled tokens, divided by the
        *average* count per batch, not by this batch's own count. Otherwise: divided by the labelled tokens
        of the whole step (every accumulated batch on every process), the stock recipe's batch mean.

        With length-grouped batches a per-batch mean would give each token of a short batch several
        times the weight of a token in a long one: short sentences (CoNLL's headlines and tables)
        would dominate, which cost 5 F1 points after one epoch (bench/README.md). A constant divisor
        weighs every token the same, as random batches do on average.
        """
        if "labels" not in inputs or not (self.tokens_per_batch or num_items_in_batch is not None):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = summed_token_loss(model, inputs, with_outputs=True)
        if self.tokens_per_batch:
            loss = loss / self.tokens_per_batch
        else:
            # Random batches: the mean over every labelled token of the step, on all processes together.
            loss = loss / num_items_in_batch
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                loss = loss * self.accelerator.num_processes  # DDP averages the gradients: undo it
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        """``length_buckets``: loraner's sampler; several processes: every mode gets a sampler that serves
        whole rounds of full batches (loraner.train.sampling), so no rank sees an example twice."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        world = self.args.world_size
        try:
            if self.batching == "length_buckets" and isinstance(dataset, WindowDataset):
                return LengthBucketSampler(
                    dataset.lengths(), self.args.train_batch_size, self.bucket_batches, self.args.seed, world
                )
            if world > 1 and hasattr(dataset, "__len__"):
                return RandomBatches(len(dataset), self.args.train_batch_size, self.args.seed, world)
        except ValueError as exc:
            raise ConfigError(f"training.batch_size: {exc}") from None
        return super()._get_train_sampler(train_dataset)

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        if self.predictor_for is None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        metrics = None
        if self.is_world_process_zero():  # rank 0 scores, the others wait for its numbers
            evaluation = evaluate(self.predictor_for(self.model), self.eval_examples)
            keys = ("loss", "precision", "recall", "f1", "accuracy")
            metrics = {f"{metric_key_prefix}_{k}": float(evaluation.metrics[k]) for k in keys}
        metrics = distributed.from_main(metrics)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def resolve_mixed_precision(mode: str) -> str:
    """``auto``: on a GPU bf16 where it has it, else fp16; on a CPU bf16 where it is native (AMX-BF16 or
    AVX512-BF16, by PyTorch's own checks), fp32 (``no``) elsewhere, where emulated bf16 is slower than
    fp32. ``no``, ``bf16`` and ``fp16`` are taken as given."""
    if mode != "auto":
        return mode
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if native_bf16() else "no"


def resolve_frozen_base(setting: str, lora: bool, cpu_autocast: bool) -> str:
    """The dtype the frozen base trains in (``training.frozen_base``). ``auto``: bf16 where a LoRA run
    trains under bf16 autocast on a CPU, where autocast would otherwise cast every frozen weight to bf16
    again in each step; fp32 elsewhere. Full fine-tuning trains every weight: fp32."""
    if not lora:
        if setting == "bf16":
            raise ConfigError("training.frozen_base: bf16 needs a LoRA run (lora.enabled: true)")
        return "fp32"
    if setting == "auto":
        return "bf16" if cpu_autocast else "fp32"
    if setting == "bf16" and not cpu_autocast:
        raise ConfigError(
            "training.frozen_base: bf16 trains under bf16 autocast on a CPU: set training.mixed_precision "
            "to bf16 (or auto on a CPU with native bf16)"
        )
    return setting


def cast_frozen(model: Any, dtype: Any) -> int:
    """Cast every frozen floating-point parameter of ``model`` to ``dtype`` in place (LoRA weights, the
    head and trained biases require grad and stay as they are); the number cast."""
    count = 0
    for param in model.parameters():
        if not param.requires_grad and param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)
            count += 1
    return count


def restore_frozen_fp32(model: Any, base: Any, labels: list[str]) -> None:
    """Put the base checkpoint's own fp32 values back into the frozen parameters that
    :func:`cast_frozen` rounded (a PEFT model's names, less ``base_model.model.`` and ``.base_layer``,
    are the base's); frozen parameters the checkpoint lacks (the new head's unused original) become
    fp32 as they are."""
    fresh = load_token_classifier(base, labels).state_dict()
    for name, param in model.named_parameters():
        if param.requires_grad or not param.is_floating_point():
            continue
        key = name.removeprefix("base_model.model.").replace(".base_layer", "")
        source = fresh.get(key)
        if source is not None and source.shape == param.shape:
            param.data = source.to(param.device)
        else:
            param.data = param.data.float()


def mixed_precision_flags(precision: str) -> dict[str, bool]:
    """TrainingArguments' flags for a resolved precision (``no``, ``bf16`` or ``fp16``)."""
    return {} if precision == "no" else {precision: True}


def precision_record(setting: str, precision: str) -> str:
    """What metrics.json and report.md say about the training precision, and why it was chosen."""
    name = {"no": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[precision]
    if setting != "auto":
        return f"{name} (mixed_precision: {setting})"
    if torch.cuda.is_available():
        return f"{name} (mixed_precision: auto, GPU)"
    why = "this CPU has native bf16" if native_bf16() else "no native bf16 on this CPU"
    return f"{name} (mixed_precision: auto: {why})"


def steps_per_epoch(n_train: int, batch_size: int, accumulation: int, world_size: int = 1) -> int:
    """Optimizer steps in one epoch. One process: every window, the last batch short; several: whole
    rounds of full batches (loraner.train.sampling), each process taking one batch of a round."""
    batches = math.ceil(n_train / batch_size) if world_size == 1 else n_train // batch_size // world_size
    return math.ceil(batches / accumulation)


def training_arguments(
    cfg: ExperimentConfig, output_dir: Path, n_train: int, world_size: int = 1
) -> TrainingArguments:
    """The Trainer's arguments. The warm-up is a share of the optimizer steps the run will take with
    ``world_size`` processes, so the preset's schedule keeps its shape whatever the world size."""
    t = cfg.training
    per_epoch = steps_per_epoch(n_train, t.batch_size, t.gradient_accumulation, world_size)
    total_steps = t.max_steps if t.max_steps > 0 else math.ceil(per_epoch * t.epochs)
    return TrainingArguments(
        output_dir=str(output_dir / CHECKPOINTS_DIR),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation,
        learning_rate=t.learning_rate,
        warmup_steps=math.ceil(t.warmup_ratio * total_steps),
        weight_decay=t.weight_decay,
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        save_total_limit=t.save_total_limit,
        # Length grouping is loraner's own sampler (WindowTrainer); transformers' "group_by_length" would
        # serve sorted runs of batches (see loraner.train.sampling) and reorder evaluation batches too.
        train_sampling_strategy="random",
        seed=t.seed,
        report_to=list(t.report_to) or "none",  # loraner.train.tracking says where they write
        run_name=cfg.name,
        # Explicit: transformers hides bars whenever its own log level is quiet, as the CLI sets it.
        disable_tqdm=False,
        dataloader_num_workers=0,
        # Several processes on a machine without GPUs: accelerate uses gloo only when told it is CPU.
        use_cpu=distributed.cpu_only(),
        # Every trainable parameter (LoRA matrices, the head) takes part in each forward pass.
        ddp_find_unused_parameters=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        **mixed_precision_flags(resolve_mixed_precision(t.mixed_precision)),
    )


def epoch_table(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per epoch: mean logged train loss in that epoch, and the epoch's validation metrics."""
    rows: dict[int, dict[str, Any]] = {}
    losses: dict[int, list[float]] = {}
    for entry in log_history:
        epoch = math.ceil(entry.get("epoch", 0) - 1e-9) or 1
        if "loss" in entry:
            losses.setdefault(epoch, []).append(entry["loss"])
        if "eval_f1" in entry:
            rows[epoch] = {
                "epoch": epoch,
                "eval_loss": entry.get("eval_loss"),
                "precision": entry.get("eval_precision"),
                "recall": entry.get("eval_recall"),
                "f1": entry.get("eval_f1"),
                "accuracy": entry.get("eval_accuracy"),
            }
    for epoch, row in rows.items():
        values = losses.get(epoch)
        row["train_loss"] = float(np.mean(values)) if values else None
    return [rows[e] for e in sorted(rows)]


def train(cfg: ExperimentConfig, output_dir: Path, resume: bool = False) -> TrainResult | None:
    """Fine-tune per ``cfg``; save the adapter (or full model) under ``output_dir``. Returns the results
    on rank 0 and None on the other ranks of a distributed run (they write nothing)."""
    if cfg.training.threads:
        torch.set_num_threads(cfg.training.threads)
    set_seed(cfg.training.seed)
    world = distributed.world_size()  # starts the process group under torchrun / accelerate launch
    main = distributed.is_main()
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    resume_from = resume_checkpoint(output_dir / CHECKPOINTS_DIR) if resume else None  # before any work

    splits = load_splits(cfg.data)
    if "train" not in splits:
        raise ConfigError("the data has no 'train' split (check data.splits)")
    if not splits["train"]:
        raise ConfigError("the 'train' split has no examples (is its file empty?)")
    labels = labels_for(splits)
    label2id = {label: i for i, label in enumerate(labels)}
    m = cfg.model
    base = ModelDir.find(m.name_or_path)  # a hub id is downloaded once, here
    tokenizer = base.load_tokenizer()
    train_set = window_dataset(
        splits["train"], tokenizer, label2id, m.max_length, m.stride, m.label_all_subwords
    )
    eval_examples = splits.get("validation") or splits["train"]
    log.info("train: %d examples -> %d windows", len(splits["train"]), len(train_set))

    model = load_token_classifier(base, labels)
    meta = model_meta(cfg, labels, base_fingerprint(model))
    if cfg.lora.enabled:
        model = wrap_with_lora(model, cfg.lora)
    params = count_parameters(model)

    predictor_for = partial(validation_predictor, tokenizer=tokenizer, meta=meta, cfg=cfg)
    precision = resolve_mixed_precision(cfg.training.mixed_precision)
    cpu_autocast = precision == "bf16" and not torch.cuda.is_available()
    validation_for = partial(predictor_for, autocast=cpu_autocast)
    frozen_dtype = resolve_frozen_base(cfg.training.frozen_base, cfg.lora.enabled, cpu_autocast)

    test_examples = splits.get("test") or []
    before = None
    before_file = output_dir / BEFORE_FILE
    if resume_from is not None:
        # The "before" scores describe the untrained model: the interrupted run measured them already.
        before = json.loads(before_file.read_text(encoding="utf-8")) if before_file.is_file() else None
    elif main and cfg.report.evaluate_before and test_examples:
        before = evaluate(predictor_for(model), test_examples).metrics
        _write_atomically(before_file, before)
    distributed.barrier()
    if frozen_dtype == "bf16":  # after "before", which scores the fp32 weights as they are served
        cast_frozen(model, torch.bfloat16)

    t = cfg.training
    if main:
        log.info(
            "effective batch: %d per device x %d accumulation x %d process%s = %d windows per step",
            t.batch_size,
            t.gradient_accumulation,
            world,
            "" if world == 1 else "es",
            t.batch_size * t.gradient_accumulation * world,
        )
    trainer = WindowTrainer(
        model=model,
        args=training_arguments(cfg, output_dir, len(train_set), world),
        train_dataset=train_set,
        data_collator=DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=None),
        eval_examples=eval_examples,
        predictor_for=validation_for,
        callbacks=[MarkCompleteCheckpoints()],
        **batching_options(cfg.training),
    )
    started = time.perf_counter()
    if resume_from is not None:
        marker = json.loads((resume_from / CHECKPOINT_MARKER).read_text(encoding="utf-8"))
        log.info("resuming from %s (step %s, epoch %s)", resume_from, marker["step"], marker["epoch"])
    train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - started

    validation = trainer.evaluate()
    # Every rank has finished training (and loaded the best checkpoint): only rank 0 goes on.
    distributed.barrier()
    if not main:
        return None
    # The test scores describe the served model: without the autocast wrapper Accelerate put around the
    # forward of a mixed-precision run, and with the base's own fp32 weights.
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    if frozen_dtype == "bf16":
        restore_frozen_fp32(model, base, labels)
    test = evaluate(predictor_for(model), test_examples, progress=True) if test_examples else None
    save_model(model, tokenizer, meta, output_dir)
    return TrainResult(
        config=cfg,
        meta=meta,
        params=params,
        before=before,
        test=test,
        validation={k.removeprefix("eval_"): v for k, v in validation.items()},
        epochs=epoch_table(trainer.state.log_history),
        timing={
            "train_seconds": round(train_seconds, 1),
            "train_samples_per_second": train_output.metrics.get("train_samples_per_second", 0.0),
            "train_windows": len(train_set),
            "precision": precision_record(cfg.training.mixed_precision, precision),
            "frozen_base": frozen_dtype,
        },
    )


def validation_predictor(
    model: Any, *, tokenizer: Any, meta: ModelMeta, cfg: ExperimentConfig, autocast: bool = False
) -> NERPredictor:
    """The predictor a training run scores with: the model being trained in a :class:`TorchBackend`,
    windowed and word-split as its ``loraner.json`` records; whole evaluation batches (no token cap:
    memory is not the constraint while training). ``autocast``: bf16, as the run trains (per-epoch
    validation); the before and test scores run in fp32, as the saved model is served by default."""
    backend = TorchBackend(model, autocast=autocast)
    return NERPredictor.from_meta(
        tokenizer, backend, meta, batch_size=cfg.training.eval_batch_size, max_batch_tokens=None
    )


def model_meta(cfg: ExperimentConfig, labels: list[str], fingerprint: dict[str, str]) -> ModelMeta:
    """What the trained model's directory records about it (``loraner.json``)."""
    # Inference must cut raw text into the units that carried labels: corpus words for word-level data
    # (each word's first subword was trained), the tokenizer's words for character spans (every subword was).
    unit = reader_unit(cfg.data.format)
    return ModelMeta(
        name=cfg.name,
        labels=labels,
        max_length=cfg.model.max_length,
        stride=cfg.model.stride,
        word_split="conll" if unit == "words" else "tokenizer",
        data_format=cfg.data.format,
        label_all_subwords=cfg.model.label_all_subwords,
        lora=cfg.lora.enabled,
        base_model=cfg.model.name_or_path,
        base_fingerprint=fingerprint,
        config=cfg.model_dump(mode="json"),
    )


def save_model(model: Any, tokenizer: Any, meta: ModelMeta, output_dir: Path) -> Path:
    """LoRA: adapter (with the trained classifier) to ``adapter/``; full tuning: model to ``merged/``."""
    target = output_dir / (ADAPTER_DIR if meta.lora else MERGED_DIR)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    write_meta(target, meta)
    make_readable(target)
    return target
