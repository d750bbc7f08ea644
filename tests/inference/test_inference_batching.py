"""Length-sorted batches: at most ``batch_size`` windows and, with ``max_tokens``, at most that many
padded tokens per forward pass (but always one window)."""

from __future__ import annotations

import pytest

from loraner.data.alignment import Window
from loraner.errors import ConfigError
from loraner.inference.encoding import length_batches


def windows_of(lengths: list[int]) -> list[Window]:
    return [Window(i, 0, n, 0, n, tuple(range(n))) for i, n in enumerate(lengths)]


@pytest.mark.parametrize(
    ("lengths", "batch_size", "max_tokens", "expected"),
    [
        # no cap: batches of batch_size in length order
        ([30, 10, 20, 40], 2, None, [[1, 2], [0, 3]]),
        # the cap splits wide windows: 2 x 512 > 1000, so one 512-window per batch
        ([512, 512, 20], 16, 1000, [[2], [0], [1]]),
        # short windows fill up to the count limit under the cap
        ([10, 10, 10, 10, 10], 3, 1000, [[0, 1, 2], [3, 4]]),
        # a window wider than the cap still runs, alone
        ([2000, 5], 4, 100, [[1], [0]]),
        # the cap applies to padded width: 3 x 40 = 120 > 100 ends the batch
        ([30, 40, 40], 8, 100, [[0, 1], [2]]),
    ],
)
def test_when_batching_then_count_and_padded_tokens_stay_within_limits(
    lengths, batch_size, max_tokens, expected
):
    assert list(length_batches(windows_of(lengths), batch_size, max_tokens)) == expected


def test_when_max_batch_tokens_is_not_positive_then_config_error(tiny_roberta_dir):
    from loraner.inference import NERPredictor

    with pytest.raises(ConfigError, match="max_batch_tokens"):
        NERPredictor.from_pretrained(tiny_roberta_dir, backend="torch", max_batch_tokens=-1)
