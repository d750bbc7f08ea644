"""Length-sorted chunks of a random batch: the cut, the trimmed tensors, and the same gradient."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from loraner.train.chunking import length_chunks, split_batch


def chunk_cost(chunks: list[list[int]], lengths: list[int], overhead: int) -> int:
    return sum(len(c) * max(lengths[i] for i in c) + overhead for c in chunks)


def brute_force_cost(lengths: list[int], overhead: int) -> int:
    """Every cut of the sorted rows into contiguous groups (2^(n-1) of them)."""
    sizes = sorted(lengths)
    best = None
    for mask in range(2 ** (len(sizes) - 1)):
        cost, start = 0, 0
        for end in range(1, len(sizes) + 1):
            if end == len(sizes) or mask >> (end - 1) & 1:
                cost += (end - start) * sizes[end - 1] + overhead
                start = end
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("overhead", [0, 8, 32, 1000])
def test_the_cut_is_the_cheapest_one(overhead: int):
    rng = random.Random(overhead)
    for _ in range(20):
        lengths = [rng.randint(1, 80) for _ in range(rng.randint(1, 10))]
        chunks = length_chunks(lengths, overhead)
        assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
        assert chunk_cost(chunks, lengths, overhead) == brute_force_cost(lengths, overhead)


def test_overhead_trades_chunks_for_padding():
    lengths = [5, 6, 7, 40, 42, 90]
    assert len(length_chunks(lengths, 0)) == len(set(lengths))  # padding only: one chunk per length
    assert length_chunks(lengths, 10_000) == [[0, 1, 2, 3, 4, 5]]  # chunks only: the whole batch
    assert length_chunks(lengths, 32) == [[0, 1, 2], [3, 4], [5]]
    with pytest.raises(ValueError, match="overhead"):
        length_chunks(lengths, -1)


@pytest.mark.parametrize("side", ["right", "left"])
def test_split_batch_keeps_every_row_and_trims_only_padding(side: str):
    lengths = [3, 9, 2, 8]
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, n in enumerate(lengths):
        cols = slice(0, n) if side == "right" else slice(width - n, width)
        ids[row, cols] = torch.arange(1, n + 1) + 100 * row
        mask[row, cols] = 1
        labels[row, cols] = row
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels, "flag": torch.tensor(1)}
    chunks = split_batch(batch, overhead_tokens=1)
    assert len(chunks) == 2
    seen = {}
    for chunk in chunks:
        assert chunk["flag"] is batch["flag"]
        assert chunk["input_ids"].shape == chunk["labels"].shape == chunk["attention_mask"].shape
        assert chunk["input_ids"].shape[1] == int(chunk["attention_mask"].sum(1).max())  # no all-pad column
        rows = zip(chunk["input_ids"], chunk["attention_mask"], chunk["labels"], strict=True)
        for ids_row, mask_row, label_row in rows:
            row = int(label_row[mask_row.bool()][0])
            seen[row] = ids_row[mask_row.bool()].tolist()
    assert seen == {r: (torch.arange(1, n + 1) + 100 * r).tolist() for r, n in enumerate(lengths)}


def lora_gradients(
    model_dir: Path, out: Path, features: list[dict], batching: str, accumulation: int, counted: bool
) -> dict:
    from transformers import DataCollatorForTokenClassification, TrainingArguments

    from loraner.inference.backends import load_token_classifier
    from loraner.modeldir import load_tokenizer
    from loraner.settings import LoraSettings
    from loraner.train.model import wrap_with_lora
    from loraner.train.trainer import WindowDataset, WindowTrainer

    torch.manual_seed(0)
    tokenizer = load_tokenizer(model_dir)
    model = wrap_with_lora(
        load_token_classifier(str(model_dir), ["O", "B-X", "I-X"]),
        LoraSettings(dropout=0.0, target_modules=["query", "value"]),
    )
    for name, param in model.named_parameters():  # LoRA B starts at zero: give it a gradient path
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    for module in model.modules():  # the same function in both runs: no dropout draws
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=len(features),
        report_to="none",
        gradient_accumulation_steps=accumulation,
    )
    trainer = WindowTrainer(
        model=model,
        args=args,
        train_dataset=WindowDataset(features),
        data_collator=DataCollatorForTokenClassification(tokenizer),
        batching=batching,
        chunk_overhead_tokens=2,
    )
    batch = trainer.data_collator(features)
    trainer.current_gradient_accumulation_steps = accumulation
    # Trainer counts the labelled tokens of the whole accumulation window when the model takes loss
    # kwargs (as PEFT's RoBERTa does): as if ``accumulation`` batches like this one.
    assert trainer.model_accepts_loss_kwargs
    count = batch["labels"].ne(-100).sum() * accumulation if counted else None
    loss = trainer.training_step(trainer.model, batch, num_items_in_batch=count)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {
        "loss": float(loss),
        "grads": grads,
        "computed": trainer.computed_tokens,
        "real": trainer.real_tokens,
    }


@pytest.mark.parametrize("counted", [False, True])
@pytest.mark.parametrize("accumulation", [1, 2])
def test_chunked_step_has_the_batch_mean_loss_and_gradient(
    tiny_roberta_factory, tmp_path: Path, accumulation: int, counted: bool
):
    """The reference is the stock step on the unchunked batch (its mean token loss), divided by the
    accumulation steps. Whether Trainer counted the labelled tokens (``counted``) or not, the chunked
    step must give that. (Stock steps with a count are not the reference: RoBERTa's token classifier
    ignores the count, so its loss is then left undivided by the accumulation steps.)"""
    model_dir = tiny_roberta_factory(["O", "B-X", "I-X"])
    vocab = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["vocab_size"]
    rng = random.Random(0)
    features = []
    for n in (4, 25, 6, 30, 5, 7):
        labels = [rng.choice([0, 1, 2]) for _ in range(n)]
        labels[0] = labels[-1] = -100  # <s> and </s>
        ids = [0] + [rng.randint(10, vocab - 1) for _ in range(n - 2)] + [2]  # ordinary tokens
        features.append({"input_ids": ids, "labels": labels})
    stock = lora_gradients(model_dir, tmp_path, features, "random", 1, False)
    chunked = lora_gradients(model_dir, tmp_path, features, "length_chunks", accumulation, counted)
    assert chunked["loss"] == pytest.approx(stock["loss"] / accumulation, rel=1e-5)
    assert stock["grads"].keys() == chunked["grads"].keys() and stock["grads"]
    for name, grad in stock["grads"].items():
        torch.testing.assert_close(
            chunked["grads"][name], grad / accumulation, rtol=1e-4, atol=1e-6, msg=name
        )
    assert stock["real"] == chunked["real"] == sum(len(f["input_ids"]) for f in features)
    assert chunked["computed"] < 0.6 * stock["computed"]  # 6 x 30 padded against chunks of like length
