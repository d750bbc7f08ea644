"""The checks every export runs against its source (ONNX, OpenVINO): the same windows, the same numbers.

* :func:`logits_parity`: the largest logit difference and the argmax agreement of two runtimes on real
  (unpadded) positions of the windows the predictor builds for the sample texts.
* :func:`entity_parity`: a quantized graph against its fp32 reference, decoded by the same predictor
  code: entity agreement (F1 of its entities against the reference's), and with gold entities the F1
  of each and the drop in points.
* :class:`ParityReport`: what an export checked, written to ``export_report.json`` beside the graph, and
  the check that refuses a graph whose fp32 logits are more than ``atol`` from those of the source model
  in PyTorch fp32 (:func:`reference_predictor`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from loraner import __version__
from loraner.errors import ConfigError, ModelError
from loraner.inference.encoding import pad
from loraner.inference.predictor import NERPredictor
from loraner.modeldir import EXPORT_REPORT_FILE, QUANTIZATIONS, ModelDir
from loraner.scores import entity_f1
from loraner.types import Entity

PARITY_BATCH = 8  # windows per forward pass of the logits check

# A default held-out sample: names, places and organisations in the languages the presets use, with
# accents and non-Latin script. Pass your own (``sample_texts`` / ``--sample``) for a real check.
DEFAULT_SAMPLE = [
    "José Müller flew from Oslo to São Paulo on Monday to meet Angela Merkel.",
    "Pasienten Kari Nordmann (45 år) ble innlagt ved Haukeland universitetssjukehus i Bergen 12.03.2024.",
    "Microsoft and the University of Cambridge announced a partnership in London yesterday.",
    "Dr. Ola Hansen henviste pasienten til St. Olavs hospital i Trondheim.",
    "Barack Obama met Emmanuel Macron at the Élysée Palace in Paris.",
    "Lars Østergaard bor i Tromsø og jobber på UNN.",
    "The European Central Bank in Frankfurt raised rates, said Christine Lagarde.",
    "東京タワー is in Tokyo, Japan; Naomi Osaka visited it in 2023.",
    "Kontakt Ingrid Solberg på telefon 22 33 44 55 eller i Storgata 1, 0155 Oslo.",
    "Real Madrid beat FC Barcelona 3-1 at the Santiago Bernabéu.",
    "Amazon opened a new office in Dublin, Ireland, led by Siobhán O'Brien.",
    "Fastlege Per Johansen, Sandvika legesenter, tlf. 67 55 44 33.",
]


def check_quantization(quantize: str | None, *, none: bool = False) -> str | None:
    """``quantize`` as the exporters take it (``"none"`` read as no quantization where ``none``), or a
    :class:`ConfigError` listing the choices."""
    if none and quantize == "none":
        return None
    if quantize is not None and quantize not in QUANTIZATIONS:
        choices = ", ".join([*(["none"] if none else []), *QUANTIZATIONS])
        raise ConfigError(f"quantize {quantize!r} is not supported (choose from: {choices})")
    return quantize


def export_sample(sample_texts: Sequence[str] | None) -> list[str]:
    """The texts an export is checked on: ``sample_texts`` (or :data:`DEFAULT_SAMPLE`) without blank
    ones; none left is a :class:`ConfigError`."""
    texts = [t for t in (sample_texts or DEFAULT_SAMPLE) if t.strip()]
    if not texts:
        raise ConfigError("the export sample has no non-empty texts")
    return texts


@dataclass
class ParityReport:
    """What an export checked against its source model, also written to ``export_report.json`` beside
    the graph: the fp32 graph's largest logit difference and argmax agreement with PyTorch on the windows
    of the sample texts (at most ``atol`` apart), and for int8 its entity agreement and sizes (``int8``).
    Each export's report adds its own fields."""

    model_dir: str
    output_dir: str
    quantization: str | None
    sample_texts: int
    windows: int
    fp32_max_abs_diff: float
    fp32_token_agreement: float
    atol: float
    int8: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    loraner_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, folder: Path) -> Path:
        """``folder/export_report.json``."""
        path = folder / EXPORT_REPORT_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path

    @classmethod
    def of_fp32_graph(
        cls,
        reference: NERPredictor,
        graph: Any,
        windows: Sequence[tuple[int, ...]],
        *,
        runtime: str,
        folder: Path,
        model_dir: str,
        output_dir: Path,
        quantization: str | None,
        sample_texts: int,
        atol: float,
        **fields: Any,
    ) -> Self:
        """The fp32 ``graph`` (a backend of ``runtime``) against ``reference`` in PyTorch on ``windows``,
        with the export's own ``fields``; refused (:meth:`check_fp32`, the report written to ``folder``)
        where the logits differ by more than ``atol``."""
        max_diff, agreement = logits_parity(reference.backend, graph, windows, reference.pad_id)
        report = cls(
            model_dir,
            str(output_dir),
            quantization,
            sample_texts,
            len(windows),
            max_diff,
            agreement,
            atol,
            **fields,
        )
        report.check_fp32(runtime, folder)
        return report

    def check_fp32(self, runtime: str, folder: Path) -> None:
        """Refuse the graph (:class:`ModelError`, this report written to ``folder`` first) where its fp32
        logits differ from PyTorch's by more than ``atol``."""
        if not self.fp32_max_abs_diff <= self.atol:
            path = self.write(folder)
            raise ModelError(
                f"{runtime} fp32 logits differ from PyTorch by {self.fp32_max_abs_diff:.2e} "
                f"(> atol {self.atol:.0e}); see {path}"
            )


def reference_predictor(model: ModelDir, threads: int | None = None) -> NERPredictor:
    """The source model in PyTorch, in fp32 whatever the CPU: an exported graph is fp32 and must match
    the model's own numbers."""
    return NERPredictor.from_pretrained(model, backend="torch", threads=threads, dtype="fp32")


def traceable_model(model_dir: Path) -> Any:
    """The token classifier as a module with exactly two inputs (``input_ids``, ``attention_mask``) and
    one output (the logits), in eval mode, for the ONNX and OpenVINO converters to trace. Eager attention
    traces to plain ops that both runtimes fuse; SDPA paths may not trace."""
    import torch  # the exporters' extra ([train]); the checks below do not need it
    from transformers import AutoModelForTokenClassification

    class LogitsOnly(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    model = AutoModelForTokenClassification.from_pretrained(str(model_dir), attn_implementation="eager")
    return LogitsOnly(model).eval()  # eval() on the wrapper too: export restores its train flag


def sample_windows(predictor: Any, texts: Sequence[str]) -> list[tuple[int, ...]]:
    """The model inputs the predictor would build for ``texts`` (special tokens, windows)."""
    return [window.ids for window in predictor.windows(predictor.tokenize(texts))]


def logits_parity(
    reference: Any, candidate: Any, windows: Sequence[tuple[int, ...]], pad_id: int
) -> tuple[float, float]:
    """Max |logit diff| and argmax agreement over real (unpadded) positions, in padded batches."""
    max_diff, same, total = 0.0, 0, 0
    for at in range(0, len(windows), PARITY_BATCH):
        rows = windows[at : at + PARITY_BATCH]
        ids, mask = pad(rows, pad_id)
        ref, cand = reference.logits(ids, mask), candidate.logits(ids, mask)
        real = mask.astype(bool)
        max_diff = max(max_diff, float(np.abs(ref[real] - cand[real]).max()))
        same += int((ref[real].argmax(-1) == cand[real].argmax(-1)).sum())
        total += int(real.sum())
    return max_diff, (same / total if total else 1.0)


def entity_parity(
    predictor: Any,
    reference: Any,
    candidate: Any,
    texts: Sequence[str],
    gold: Sequence[Sequence[Entity]] | None = None,
) -> dict[str, Any]:
    """``candidate`` (a quantized backend) against ``reference`` (its fp32 graph), both decoded by
    ``predictor``'s code on ``texts``: entity agreement, token agreement and largest logit difference;
    with ``gold`` (the entities of each text), the F1 of each against it and the drop in points."""
    windows = sample_windows(predictor, texts)
    max_diff, token_agreement = logits_parity(reference, candidate, windows, predictor.pad_id)
    expected = predictor.with_backend(reference).predict_batch(list(texts))
    found = predictor.with_backend(candidate).predict_batch(list(texts))
    scores: dict[str, Any] = {
        "entity_agreement": round(entity_f1(expected, found), 4),
        "entities_fp32": sum(map(len, expected)),
        "entities_int8": sum(map(len, found)),
        "max_abs_logit_diff": max_diff,
        "token_agreement": round(token_agreement, 4),
    }
    if gold is not None:
        f1_fp32, f1_int8 = entity_f1(gold, expected), entity_f1(gold, found)
        scores |= {
            "f1_fp32": round(f1_fp32, 4),
            "f1_int8": round(f1_int8, 4),
            "f1_drop_points": round(100 * (f1_fp32 - f1_int8), 2),
        }
    return scores
