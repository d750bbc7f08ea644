"""Ray Data batch inference without importing ray: a callable class for ``Dataset.map_batches``.

    import ray
    from loraner.inference.ray import RayNERPredictor

    ds = ray.data.read_json("notes.jsonl")
    ds = ds.map_batches(
        RayNERPredictor, fn_constructor_kwargs={"model_dir": "export/onnx"},
        batch_size=256, concurrency=4,
    )

Each actor loads the model once in ``__init__``; ``__call__`` maps a batch (a dict of columns or a
pandas DataFrame) to the same batch plus an ``entities`` column of ``Entity.to_dict()`` lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loraner.inference.predictor import NERPredictor


def entity_dicts(predictor: Any, texts: Sequence[str]) -> list[list[dict[str, object]]]:
    """The pure batch function: texts -> entity dicts, one list per text."""
    return [[e.to_dict() for e in ents] for ents in predictor.predict_batch([str(t) for t in texts])]


class RayNERPredictor:
    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        text_column: str = "text",
        output_column: str = "entities",
        predictor: Any = None,
        **predictor_kwargs: Any,
    ) -> None:
        if predictor is None and model_dir is None:
            raise ValueError("give model_dir or predictor")
        self.predictor = predictor or NERPredictor.from_pretrained(model_dir, **predictor_kwargs)  # type: ignore[arg-type]
        self.text_column = text_column
        self.output_column = output_column

    def __call__(self, batch: Any) -> Any:
        results = entity_dicts(self.predictor, list(batch[self.text_column]))
        if hasattr(batch, "assign"):  # pandas batch_format
            return batch.assign(**{self.output_column: results})
        out = dict(batch)
        out[self.output_column] = results
        return out
