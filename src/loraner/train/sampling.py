"""Training batch orders: random batches with little padding, and both of them shardable across processes.

transformers' ``group_by_length`` sorts mega-batches of 50 batches long-to-short and serves each
mega-batch's batches in that order: padding falls to a few percent, but the model then sees runs of
batches that are all short (CoNLL's headlines and result tables) or all long, and after one epoch of
6,000 CoNLL sentences that cost 6.5 F1 points against random batches (bench/README.md). Here the
batches are cut from *small* random buckets (a few batches' worth of windows, sorted by length) and then
served in random order, so each batch is of similar lengths while the stream of batches stays a
random sample of the data.

Several processes (``torchrun``, ``accelerate launch``): the Trainer's DataLoader cuts the index stream
into batches of the per-device batch size and accelerate deals those batches round-robin to the ranks
(``BatchSamplerShard``: rank ``r`` gets batches ``r``, ``r + N``, ...). When the batches do not divide
evenly, accelerate would complete the last round with examples from the start of the epoch, so some
examples would be seen twice. With ``num_replicas > 1`` the samplers below therefore serve only whole
rounds of full batches: every rank gets disjoint batches and the same number of them, and the fewer than
``num_replicas x batch_size`` windows left over are left out of that epoch (a different few each epoch,
since every epoch is reshuffled from the seed and the epoch number, identically on every rank).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence


class EpochBatches:
    """A torch ``Sampler`` (``__iter__``, ``__len__``, ``set_epoch``) serving ``batches(epoch)`` flattened.

    Each pass (epoch) draws a new order from ``seed`` and the pass number: runs are reproducible, and
    every rank of a distributed run computes the same order.
    """

    def __init__(self, size: int, batch_size: int, seed: int = 0, num_replicas: int = 1) -> None:
        if batch_size < 1 or num_replicas < 1:
            raise ValueError("batch_size and num_replicas must be >= 1")
        if num_replicas > 1 and size < batch_size * num_replicas:
            raise ValueError(
                f"{size} training windows cannot fill one batch of {batch_size} on each of "
                f"{num_replicas} processes"
            )
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.num_replicas = num_replicas
        self.epoch = 0

    def ordered_batches(self, rng: random.Random) -> list[list[int]]:
        """All indices as batches: full batches first, in random order, then at most one short batch."""
        raise NotImplementedError

    def batches(self, epoch: int) -> list[list[int]]:
        """The epoch's batches in serving order. Several processes: whole rounds of full batches only."""
        batches = self.ordered_batches(random.Random(self.seed * 1_000_003 + epoch))
        if self.num_replicas == 1:
            return batches
        full = [b for b in batches if len(b) == self.batch_size]
        return full[: len(full) - len(full) % self.num_replicas]

    def rank_batches(self, epoch: int, rank: int) -> list[list[int]]:
        """The batches process ``rank`` trains on in ``epoch`` (what accelerate's round-robin deals it)."""
        return self.batches(epoch)[rank :: self.num_replicas]

    def __len__(self) -> int:
        if self.num_replicas == 1:
            return self.size
        rounds = (self.size // self.batch_size) // self.num_replicas
        return rounds * self.num_replicas * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        self.epoch += 1  # a new order next pass, also when nobody calls set_epoch
        return iter([i for batch in self.batches(epoch) for i in batch])


class RandomBatches(EpochBatches):
    """Plain random batches (``batching: random`` and ``length_chunks`` on several processes)."""

    def ordered_batches(self, rng: random.Random) -> list[list[int]]:
        order = list(range(self.size))
        rng.shuffle(order)
        return [order[at : at + self.batch_size] for at in range(0, len(order), self.batch_size)]


class LengthBucketSampler(EpochBatches):
    """Indices in batch order: shuffle, cut into buckets of ``bucket_batches`` batches, sort each bucket
    by length, split it into batches, shuffle the batches. The DataLoader cuts the index stream into
    batches of ``batch_size`` again, so every batch but the last is full and the one short batch is
    served last (on several processes there is none: see the module's doc).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        bucket_batches: int = 8,
        seed: int = 0,
        num_replicas: int = 1,
    ) -> None:
        if bucket_batches < 1:
            raise ValueError("batch_size and bucket_batches must be >= 1")
        super().__init__(len(lengths), batch_size, seed, num_replicas)
        self.lengths = list(lengths)
        self.bucket_batches = bucket_batches

    def ordered_batches(self, rng: random.Random) -> list[list[int]]:
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
