"""Seeded per-split subsampling (``DataConfig.sample``)."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping

from loraner.errors import ConfigError
from loraner.types import Example, Splits

log = logging.getLogger(__name__)


def sample_size(request: int | float | None, available: int, split: str) -> int:
    """How many examples to keep: an int is a count, a float a fraction in (0, 1], None is all."""
    if request is None:
        return available
    if isinstance(request, bool):  # YAML ``true`` would otherwise pass as the int 1
        raise ConfigError(f"data.sample.{split} must be a count, a fraction or null, got {request!r}")
    if isinstance(request, float):
        if not 0.0 < request <= 1.0:
            raise ConfigError(f"data.sample.{split}: a fraction must be in (0, 1], got {request}")
        return max(1, round(request * available)) if available else 0
    if request < 0:
        raise ConfigError(f"data.sample.{split}: a count must be >= 0, got {request}")
    if request > available:
        log.info(
            "data.sample.%s asks for %d examples but only %d exist: keeping all", split, request, available
        )
        return available
    return request


def sample_examples(
    examples: list[Example], request: int | float | None, seed: int, split: str
) -> list[Example]:
    """A seeded subset in the original order. The split name is part of the seed, so splits of
    equal size do not get the same index pattern."""
    size = sample_size(request, len(examples), split)
    if size >= len(examples):
        return examples
    rng = random.Random(f"{seed}:{split}")
    keep = sorted(rng.sample(range(len(examples)), size))
    return [examples[i] for i in keep]


def sample_splits(splits: Splits, sample: Mapping[str, int | float | None], seed: int) -> Splits:
    """Apply ``sample`` to ``splits``; naming a split that was not loaded is a config error."""
    unknown = sorted(set(sample) - set(splits))
    if unknown:
        raise ConfigError(
            f"data.sample names split(s) {', '.join(unknown)} that were not loaded; "
            f"loaded: {', '.join(splits)}"
        )
    return {
        name: sample_examples(examples, sample.get(name), seed, name) for name, examples in splits.items()
    }
