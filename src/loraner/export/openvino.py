"""Export a token-classification model to an OpenVINO IR (fp32, or NNCF static int8) and check it.

The IR goes into the model directory's ``openvino/`` folder (``model.xml``, ``model.bin`` and its
``export_report.json``): into the model directory itself by default, so one directory offers every
runtime and ``backend=auto`` picks among them, or into ``output_dir`` with the tokenizer, ``config.json``
and ``loraner.json`` beside it, self-contained like an ONNX export. ``loraner.json`` records the IR's
quantization (``openvino``).

int8 is NNCF's post-training static quantization (``ModelType.TRANSFORMER``: activations and weights,
scales fixed from calibration windows): calibrated on the texts given, or on the model's own validation
split when its ``loraner.json`` records the training data. The checks are the ONNX export's
(:mod:`loraner.export.parity`): fp32 logits against PyTorch (``atol``), int8 entity agreement with the
fp32 IR (``int8_floor``) and, where the calibration texts have gold entities, the F1 drop in points
(``max_f1_drop``). A graph that misses one is not written; there is no silent fall back to fp32.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraner import defaults
from loraner.data.examples import as_span_example
from loraner.data.registry import load_splits
from loraner.errors import ConfigError, DataError, ModelError
from loraner.export.parity import (
    DEFAULT_SAMPLE,
    ParityReport,
    check_quantization,
    entity_parity,
    reference_predictor,
    sample_windows,
    traceable_model,
)
from loraner.inference.backends import OpenVinoBackend
from loraner.inference.encoding import pad
from loraner.modeldir import (
    OPENVINO_DIR,
    OPENVINO_MODEL_FILE,
    OPENVINO_WEIGHTS_FILE,
    ModelDir,
    copy_companions,
    copy_meta,
    make_readable,
    resolve_model_dir,
)
from loraner.settings import ExperimentConfig
from loraner.types import Span

log = logging.getLogger(__name__)

__all__ = ["OpenVinoReport", "export_openvino", "validation_calibration"]


@dataclass(kw_only=True)
class OpenVinoReport(ParityReport):
    """What ``export_openvino`` checked (:class:`~loraner.export.parity.ParityReport`), with where the
    sample texts came from (``calibration``: a file, the validation split, the default sample) and the
    OpenVINO version; also written to ``openvino/export_report.json``."""

    calibration: str
    openvino_version: str = ""


@dataclass(frozen=True)
class Calibration:
    """The texts int8 is calibrated and checked on, with their gold entities where known."""

    texts: list[str]
    gold: list[list[Span]] | None
    source: str


def export_openvino(
    model_dir: str | Path,
    output_dir: str | Path | None = None,
    *,
    quantize: str | None = None,
    calibration_texts: Sequence[str] | None = None,
    calibration_source: str = "texts given",
    calibration_size: int = defaults.CALIBRATION_SIZE.value,
    atol: float = defaults.ATOL.value,
    int8_floor: float = defaults.INT8_FLOOR.value,
    max_f1_drop: float = defaults.INT8_MAX_F1_DROP.value,
    threads: int | None = None,
) -> OpenVinoReport:
    """Convert ``model_dir`` (a merged model or any checkpoint; a run directory means its ``merged/``)
    to ``OUTPUT/openvino/model.xml`` (``OUTPUT``: ``output_dir``, else ``model_dir`` itself), int8 if
    ``quantize="int8"``, and verify it. ``calibration_texts``: the int8 calibration and check texts
    (default: the model's validation split; the first ``calibration_size`` are used)."""
    started = time.perf_counter()
    ov, nncf = _import_openvino()
    check_quantization(quantize)
    if calibration_size < 1:
        raise ConfigError(f"calibration_size must be >= 1 (got {calibration_size})")
    source = str(model_dir)
    local = resolve_model_dir(model_dir) if Path(model_dir).exists() else None
    if output_dir is None and local is None:
        raise ConfigError(f"{model_dir} is not a local directory: give an output directory (--output)")
    model = ModelDir.find(local or model_dir)
    if not model.has_torch_weights:
        raise ModelError(f"{model}: no PyTorch weights to convert (a merged model directory is needed)")
    output = Path(output_dir) if output_dir is not None else model.path
    calibration = _calibration(model, calibration_texts, calibration_source, calibration_size, quantize)

    torch_predictor = reference_predictor(model, threads)
    windows = sample_windows(torch_predictor, calibration.texts)
    target = output / OPENVINO_DIR
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loraner-openvino-") as tmp:
        fp32_path = Path(tmp) / "fp32" / OPENVINO_MODEL_FILE
        fp32_graph = _convert(ov, model.path)
        ov.save_model(fp32_graph, str(fp32_path), compress_to_fp16=False)
        # f32 hint: the check compares the graph's own numbers with PyTorch's, whatever the CPU.
        fp32_backend = OpenVinoBackend.from_file(fp32_path, threads, dtype="fp32")
        report = OpenVinoReport.of_fp32_graph(
            torch_predictor,
            fp32_backend,
            windows,
            runtime="OpenVINO",
            folder=target,
            model_dir=source,
            output_dir=output,
            quantization=quantize,
            sample_texts=len(calibration.texts),
            atol=atol,
            calibration=calibration.source,
            openvino_version=ov.__version__,
        )
        final_path = fp32_path
        if quantize == "int8":
            final_path = Path(tmp) / "int8" / OPENVINO_MODEL_FILE
            started_int8 = time.perf_counter()
            int8_graph = _quantize(nncf, fp32_graph, windows, torch_predictor.pad_id)
            ov.save_model(int8_graph, str(final_path), compress_to_fp16=False)
            int8_backend = OpenVinoBackend.from_file(final_path, threads, dtype="fp32")
            report.int8 = {
                "method": "nncf static int8, ModelType.TRANSFORMER",
                "calibration_windows": len(windows),
                **entity_parity(
                    torch_predictor, fp32_backend, int8_backend, calibration.texts, calibration.gold
                ),
                "floor": int8_floor,
                "max_f1_drop_points": max_f1_drop,
                "size_mb_fp32": _size_mb(fp32_path),
                "size_mb_int8": _size_mb(final_path),
                "quantize_seconds": round(time.perf_counter() - started_int8, 2),
            }
            problem = _int8_problem(report.int8, int8_floor, max_f1_drop, len(calibration.texts))
            if problem:
                raise ModelError(f"{problem}; nothing written (see {report.write(target)})")
        for name in (OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE):
            shutil.copyfile(final_path.with_name(name), target / name)
    openvino = {"source": source, "quantization": quantize or "none", "calibration": calibration.source}
    if output != model.path:  # a self-contained directory: tokenizer and config beside the IR
        copy_companions(
            model, output, torch_predictor.tokenizer, max_length=torch_predictor.max_length, openvino=openvino
        )
    else:
        copy_meta(model, output, openvino=openvino)
    report.seconds = round(time.perf_counter() - started, 2)
    report.write(target)
    make_readable(output)
    log.info("exported %s to %s (%s)", model.path, target / OPENVINO_MODEL_FILE, quantize or "fp32")
    return report


def _import_openvino() -> tuple[Any, Any]:
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise ModelError(
            f"the OpenVINO export needs openvino and nncf ({exc}): pip install 'loraner[openvino]'"
        ) from exc
    return ov, nncf


def _calibration(
    model: ModelDir, texts: Sequence[str] | None, source: str, size: int, quantize: str | None
) -> Calibration:
    if texts is not None:
        kept = [t for t in texts if t.strip()][:size]
        if not kept:
            raise ConfigError(f"the calibration texts ({source}) hold no non-empty text")
        return Calibration(kept, None, source)
    validation = validation_calibration(model, size)
    if validation is not None:
        return validation
    if quantize == "int8":
        raise ConfigError(
            f'{model}: static int8 needs calibration texts: give --calibration FILE (JSONL {{"text"}}, '
            "texts like the ones the model will see); this model records no validation split to use"
        )
    return Calibration(list(DEFAULT_SAMPLE), None, "the default sample")


def validation_calibration(
    model: ModelDir, size: int = defaults.CALIBRATION_SIZE.value
) -> Calibration | None:
    """The first ``size`` examples of the validation split of the data the model was trained on, as
    texts with gold entities; None where ``loraner.json`` records no training config or no such split."""
    config = model.meta.config
    if not config:
        return None
    try:
        cfg = ExperimentConfig.model_validate(config)
        examples = load_splits(cfg.data).get("validation") or []
    except (ConfigError, DataError, ValueError, OSError) as exc:
        raise ConfigError(
            f"{model}: its validation split (from loraner.json's training config) cannot be read ({exc}); "
            "give --calibration FILE instead"
        ) from exc
    spans = [as_span_example(ex) for ex in examples]
    spans = [ex for ex in spans if ex.text.strip()][:size]
    if not spans:
        return None
    return Calibration([ex.text for ex in spans], [list(ex.spans) for ex in spans], "validation split")


def _convert(ov: Any, model_dir: Path) -> Any:
    """The PyTorch model as an OpenVINO graph with dynamic batch and length (int64 inputs)."""
    import torch  # the [train] extra, as for the ONNX export

    wrapper = traceable_model(model_dir)
    example = {
        "input_ids": torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]], dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long),
    }
    dynamic = [(name, ov.PartialShape([-1, -1]), ov.Type.i64) for name in example]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
            graph = ov.convert_model(wrapper, example_input=example, input=dynamic)
    except Exception as exc:  # the converter raises many unrelated types
        raise ModelError(f"OpenVINO could not convert {model_dir}: {exc}") from exc
    graph.outputs[0].get_tensor().set_names({"logits"})
    return graph


def _quantize(nncf: Any, graph: Any, windows: Sequence[tuple[int, ...]], pad_id: int) -> Any:
    """NNCF static int8 calibrated on ``windows``, one window per calibration item (no padding seen)."""
    items = [dict(zip(("input_ids", "attention_mask"), pad([w], pad_id), strict=True)) for w in windows]
    try:
        return nncf.quantize(
            graph,
            nncf.Dataset(items),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(items),
        )
    except Exception as exc:  # NNCF raises untyped errors for unsupported graphs
        raise ModelError(f"int8 quantization (NNCF) failed: {exc}") from exc


def _int8_problem(int8: dict[str, Any], floor: float, max_drop: float, texts: int) -> str | None:
    if int8["entity_agreement"] < floor:
        return (
            f"int8 entity agreement {int8['entity_agreement']:.3f} is below the floor {floor} on {texts} "
            "texts; export fp32 instead, calibrate on other texts or lower --int8-floor"
        )
    drop = int8.get("f1_drop_points")
    if drop is not None and drop > max_drop:
        return (
            f"int8 loses {drop:.2f} F1 points against fp32 on {texts} validation texts (limit {max_drop}); "
            "export fp32 instead or raise --max-f1-drop"
        )
    return None


def _size_mb(xml: Path) -> float:
    return round(xml.with_name(OPENVINO_WEIGHTS_FILE).stat().st_size / 2**20, 2)
