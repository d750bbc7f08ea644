"""Random batches, computed in length-sorted chunks: the gradient of the usual recipe, with little padding.

A random batch of 16 CoNLL sentences is padded to its longest one: about half of the tokens computed
are padding. Length-grouped batches remove the padding but change *which* sentences share a batch, and
that cost F1 after one epoch (bench/README.md). Here the batch stays random: it is sorted by length and
cut into a few chunks, each padded only to its own longest row; every chunk's summed token loss is
divided by the whole batch's labelled-token count and back-propagated, so the accumulated gradient is
the batch-mean gradient of the unchunked batch (up to dropout draws and float rounding).

Where to cut is a small dynamic programme: minimise computed tokens (rows x longest row, summed over
chunks) plus a fixed cost per chunk, the per-forward overhead expressed in tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def length_chunks(lengths: Sequence[int], overhead_tokens: int) -> list[list[int]]:
    """Row indices grouped into chunks of similar length: the cheapest cut of the length-sorted rows,
    costing ``rows * longest`` tokens per chunk plus ``overhead_tokens`` per chunk."""
    if overhead_tokens < 0:
        raise ValueError("overhead_tokens must be >= 0")
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    sizes = [lengths[i] for i in order]
    best = [0.0] + [float("inf")] * len(sizes)  # best[j]: cheapest cost of the first j sorted rows
    cut = [0] * (len(sizes) + 1)
    for end in range(1, len(sizes) + 1):
        for start in range(end):
            cost = best[start] + (end - start) * sizes[end - 1] + overhead_tokens
            if cost < best[end]:
                best[end], cut[end] = cost, start
    chunks: list[list[int]] = []
    end = len(sizes)
    while end > 0:
        chunks.append(order[cut[end] : end])
        end = cut[end]
    return chunks[::-1]


def split_batch(batch: dict[str, Any], overhead_tokens: int) -> list[dict[str, Any]]:
    """A collated batch (tensors with an ``attention_mask``) as length-sorted chunks, each cut down to
    the columns its own rows use (left or right padding alike). Tensors that are not ``[rows, columns]``
    are sliced by row only."""
    mask = batch["attention_mask"]
    rows, columns = mask.shape
    chunks = []
    for indices in length_chunks(mask.sum(dim=1).tolist(), overhead_tokens):
        picked = mask.new_tensor(indices)
        used = mask.index_select(0, picked).any(dim=0)
        chunk = {}
        for key, value in batch.items():
            if not hasattr(value, "index_select") or value.dim() == 0 or value.shape[0] != rows:
                chunk[key] = value
                continue
            value = value.index_select(0, picked)
            chunk[key] = value[:, used] if value.dim() >= 2 and value.shape[1] == columns else value
        chunks.append(chunk)
    return chunks
