"""Random training batches with little padding.

transformers' ``group_by_length`` sorts mega-batches of 50 batches long-to-short and serves each
mega-batch's batches in that order: padding falls to a few percent, but the model then sees runs of
batches that are all short (CoNLL's headlines and result tables) or all long, and after one epoch of
6,000 CoNLL sentences that cost 6.5 F1 points against random batches (bench/README.md). Here the
batches are cut from *small* random buckets (a few batches' worth of windows, sorted by length) and then
served in random order, so each batch is of similar lengths while the stream of batches stays a
random sample of the data.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence


class LengthBucketSampler:
    """Indices in batch order: shuffle, cut into buckets of ``bucket_batches`` batches, sort each bucket
    by length, split it into batches, shuffle the batches. A torch ``Sampler`` (it has ``__iter__`` and
    ``__len__``); the DataLoader cuts the index stream into batches of ``batch_size`` again, so every
    batch but the last is full and the one short batch is served last.

    Each pass (epoch) draws a new order from ``seed`` and the pass number: runs are reproducible.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, bucket_batches: int = 8, seed: int = 0
    ) -> None:
        if batch_size < 1 or bucket_batches < 1:
            raise ValueError("batch_size and bucket_batches must be >= 1")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.bucket_batches = bucket_batches
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        size = self.batch_size * self.bucket_batches
        full: list[list[int]] = []
        short: list[list[int]] = []
        for at in range(0, len(order), size):
            bucket = sorted(order[at : at + size], key=self.lengths.__getitem__)
            for b in range(0, len(bucket), self.batch_size):
                batch = bucket[b : b + self.batch_size]
                (full if len(batch) == self.batch_size else short).append(batch)
        rng.shuffle(full)
        return full + short

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        self.epoch += 1  # a new order next pass, also when nobody calls set_epoch
        return iter([i for batch in self.batches(epoch) for i in batch])
