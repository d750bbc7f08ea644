"""Length-bucketed random batches: every window once per epoch, little padding, random batch order."""

from __future__ import annotations

import itertools
import random

import pytest

from loraner.train.sampling import LengthBucketSampler
from loraner.train.trainer import WindowDataset, labelled_tokens_per_batch


def lengths(n: int = 203, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(5, 120) for _ in range(n)]


def padding_share(batches: list[list[int]], sizes: list[int]) -> float:
    real = sum(sizes[i] for b in batches for i in b)
    padded = sum(max(sizes[i] for i in b) * len(b) for b in batches)
    return 1 - real / padded


def test_every_index_once_and_only_the_last_batch_short():
    sizes = lengths()
    sampler = LengthBucketSampler(sizes, batch_size=16, bucket_batches=4, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(sizes))) and len(sampler) == len(sizes)
    batches = sampler.batches(0)
    assert [len(b) for b in batches[:-1]] == [16] * (len(batches) - 1)
    assert len(batches[-1]) == len(sizes) % 16


def test_batches_have_much_less_padding_than_random_ones():
    sizes = lengths(2000)
    bucketed = LengthBucketSampler(sizes, 16, 8, seed=0).batches(0)
    shuffled = list(range(len(sizes)))
    random.Random(0).shuffle(shuffled)
    plain = [shuffled[i : i + 16] for i in range(0, len(shuffled), 16)]
    assert padding_share(bucketed, sizes) < 0.5 * padding_share(plain, sizes)


def test_batch_order_is_random_not_sorted_runs():
    sizes = lengths(2000)
    widths = [max(sizes[i] for i in b) for b in LengthBucketSampler(sizes, 16, 8, seed=0).batches(0)]
    ups = sum(b > a for a, b in itertools.pairwise(widths))
    assert 0.3 < ups / (len(widths) - 1) < 0.7  # sorted runs would be all ups or all downs


def test_each_epoch_draws_a_new_order_reproducibly():
    sizes = lengths()
    first = LengthBucketSampler(sizes, 16, 4, seed=5)
    epoch0, epoch1 = list(first), list(first)
    assert epoch0 != epoch1
    again = LengthBucketSampler(sizes, 16, 4, seed=5)
    assert list(again) == epoch0
    again.set_epoch(1)
    assert list(again) == epoch1


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketSampler([1, 2], batch_size=0)


def test_labelled_tokens_per_batch_counts_scored_labels_only():
    features = [
        {"input_ids": [0] * 4, "labels": [-100, 1, 0, -100]},
        {"input_ids": [0] * 3, "labels": [2, 2, 2]},
    ]
    assert labelled_tokens_per_batch(WindowDataset(features), batch_size=1) == pytest.approx(2.5)
    assert labelled_tokens_per_batch(WindowDataset(features), batch_size=2) == pytest.approx(5.0)
    assert labelled_tokens_per_batch(features, batch_size=2) == 0.0  # unknown dataset type
