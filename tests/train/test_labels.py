"""The label list of a run, and what it says about types the training split lacks."""

from __future__ import annotations

import pytest


def test_a_type_only_in_the_test_split_is_reported_not_accepted_silently():
    from loraner.train.trainer import labels_for
    from loraner.types import WordExample

    splits = {
        "train": [WordExample(["Kari"], ["B-PER"])],
        "test": [WordExample(["Kari", "Oslo"], ["B-PER", "B-LOC"])],
    }
    with pytest.warns(
        UserWarning, match="types in the 'test' split but not in 'train' cannot be learned: LOC"
    ):
        assert labels_for(splits) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
