"""Length-bucketed random batches: every window once per epoch, little padding, random batch order."""

from __future__ import annotations

import itertools
import random

import pytest

from loraner.train.sampling import EpochBatches, LengthBucketSampler, RandomBatches
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


@pytest.mark.parametrize(("size", "batch_size", "ranks"), [(203, 16, 2), (101, 4, 3), (50, 8, 4), (8, 4, 2)])
@pytest.mark.parametrize("kind", ["length_buckets", "random"])
def test_every_rank_gets_disjoint_batches_and_as_many_as_the_others(size, batch_size, ranks, kind):
    """What the Trainer does with several processes: its DataLoader over the sampler, dealt to the ranks
    by accelerate's ``prepare_data_loader``; uneven sizes leave fewer than ranks x batch windows out."""
    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader

    def sampler() -> EpochBatches:
        if kind == "random":
            return RandomBatches(size, batch_size, seed=7, num_replicas=ranks)
        return LengthBucketSampler(lengths(size), batch_size, 2, seed=7, num_replicas=ranks)

    epochs = []
    for epoch in range(2):
        per_rank = []
        for rank in range(ranks):
            loader = DataLoader(list(range(size)), sampler=sampler(), batch_size=batch_size)
            shard = prepare_data_loader(loader, num_processes=ranks, process_index=rank, put_on_device=False)
            shard.set_epoch(epoch)
            batches = [b.tolist() for b in shard]
            assert batches == sampler().rank_batches(epoch, rank)
            assert all(len(b) == batch_size for b in batches)
            per_rank.append(batches)
        assert len({len(b) for b in per_rank}) == 1 and per_rank[0]  # the same number, at least one
        seen = [i for batches in per_rank for b in batches for i in b]
        assert len(seen) == len(set(seen))  # no window twice in the epoch, across all ranks
        assert size - len(seen) < ranks * batch_size
        assert len(seen) == len(sampler()) and len(shard) == len(per_rank[0])
        epochs.append(per_rank)
    assert epochs[0] != epochs[1]  # reshuffled per epoch, from the seed


def test_too_few_windows_for_one_round_is_refused():
    with pytest.raises(ValueError, match="one batch of 4 on each of 3"):
        RandomBatches(11, 4, num_replicas=3)
