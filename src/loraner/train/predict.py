"""Batched prediction over encoded windows, and evaluation of a model on examples.

Used for the before/after numbers, ``loraner evaluate`` and the per-epoch validation metrics, so a
score always comes from the same windowing and merging code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loraner.data.alignment import (
    IGNORE,
    EncodedDoc,
    Window,
    encode_examples,
    merge_unit_predictions,
    special_tokens,
    unit_tags,
    window_features,
    windows_for,
)
from loraner.types import Example


@dataclass
class Encoded:
    docs: list[EncodedDoc]
    windows: list[Window]
    features: list[dict[str, list[int]]]
    n_prefix: int


def encode_for_model(
    examples: Sequence[Example],
    tokenizer: Any,
    label2id: dict[str, int],
    max_length: int,
    stride: int,
    label_all_subwords: bool = False,
) -> Encoded:
    specials = special_tokens(tokenizer)
    docs = encode_examples(examples, tokenizer, label2id, label_all_subwords)
    windows = windows_for(docs, max_length, stride, specials)
    features = [window_features(docs[w.doc], w, specials) for w in windows]
    return Encoded(docs, windows, features, len(specials.prefix))


def pad_batch(features: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        ids[row, :n] = torch.tensor(f["input_ids"])
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(f["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def predict_windows(
    model: Any, features: Sequence[dict[str, list[int]]], pad_id: int, batch_size: int = 64
) -> tuple[list[np.ndarray], float]:
    """Argmax label ids per window (in input order) and the mean token loss over labelled tokens.

    Batches are formed from length-sorted windows so padding stays small.
    """
    import torch

    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(features)
    loss_sum, loss_count = 0.0, 0
    from tqdm.auto import tqdm

    starts = range(0, len(order), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="predict", unit="batch", leave=False, disable=len(starts) < 10):
            idx = order[start : start + batch_size]
            batch = pad_batch([features[i] for i in idx], pad_id)
            labels = batch.pop("labels").to(device)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            valid = labels != IGNORE
            if valid.any():
                loss = torch.nn.functional.cross_entropy(
                    logits[valid].float(), labels[valid], reduction="sum"
                )
                loss_sum += float(loss)
                loss_count += int(valid.sum())
            preds = logits.argmax(-1).cpu().numpy()
            for row, i in enumerate(idx):
                out[i] = preds[row, : len(features[i]["input_ids"])]
    return out, (loss_sum / loss_count if loss_count else 0.0)


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    gold: list[list[str]]
    pred: list[list[str]]
    encoded: Encoded


def evaluate_examples(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    labels: list[str],
    max_length: int,
    stride: int,
    batch_size: int = 64,
) -> Evaluation:
    label2id = {label: i for i, label in enumerate(labels)}
    encoded = encode_for_model(examples, tokenizer, label2id, max_length, stride)
    return evaluate_encoded(model, encoded, labels, tokenizer.pad_token_id or 0, batch_size)


def evaluate_encoded(
    model: Any, encoded: Encoded, labels: list[str], pad_id: int, batch_size: int = 64
) -> Evaluation:
    """Predict every window, merge per unit, score entities (strict IOB2) and token accuracy."""
    from loraner.eval.metrics import entity_scores

    window_preds, loss = predict_windows(model, encoded.features, pad_id, batch_size)
    gold, pred = merged_tags(encoded, window_preds, dict(enumerate(labels)))
    metrics = entity_scores(gold, pred)
    metrics["loss"] = loss
    metrics["examples"] = len(encoded.docs)
    metrics["windows"] = len(encoded.windows)
    return Evaluation(metrics, gold, pred, encoded)


def merged_tags(
    encoded: Encoded, window_preds: Sequence[np.ndarray], id2label: dict[int, str]
) -> tuple[list[list[str]], list[list[str]]]:
    merged = merge_unit_predictions(encoded.docs, encoded.windows, window_preds, encoded.n_prefix)
    gold = [doc.unit_gold for doc in encoded.docs]
    pred = [unit_tags(m, id2label) for m in merged]
    return gold, pred
