"""Export a token-classification model to ONNX (optionally int8) and check the export against the source.

The output directory is self-contained for ``NERPredictor.from_pretrained(dir, backend="onnx")``:
``model.onnx``, the tokenizer, ``config.json``, ``loraner.json`` and ``export_report.json``.

Checks (the export fails rather than ship a model that disagrees with its source):

* fp32: logits of PyTorch and onnxruntime on real, padded windows of a sample; max |diff| <= ``atol``.
* int8 (dynamic quantization of the weights): entity-level agreement (F1 of the int8 entities against
  the fp32 ONNX entities, both decoded by the same predictor code) on a held-out sample >= ``int8_floor``.

If int8 was asked for and cannot be produced or misses the floor, :class:`ModelError` is raised;
there is no silent fall back to fp32.
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

import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

from loraner import defaults
from loraner.errors import ConfigError, ModelError
from loraner.export.parity import (
    DEFAULT_SAMPLE,
    ParityReport,
    check_quantization,
    entity_parity,
    export_sample,
    reference_predictor,
    sample_windows,
    traceable_model,
)
from loraner.inference.backends import OnnxBackend
from loraner.inference.int8 import kept_in_fp32
from loraner.modeldir import ONNX_FILE, ModelDir, copy_companions, make_readable

__all__ = ["DEFAULT_SAMPLE", "ExportReport", "export_onnx"]

log = logging.getLogger(__name__)
MIN_OPSET = 17  # the oldest opset the exported graph (attention, layer norm) and its checks are built for


def check_opset(opset: int) -> None:
    if opset < MIN_OPSET:
        raise ConfigError(f"opset {opset} is too old: use {MIN_OPSET} or newer")


@dataclass(kw_only=True)
class ExportReport(ParityReport):
    """What ``export_onnx`` checked (:class:`~loraner.export.parity.ParityReport`), with the graph's
    ONNX opset; also written to ``export_report.json``."""

    opset: int


def export_onnx(
    model_dir: str | Path,
    output_dir: str | Path,
    *,
    quantize: str | None = None,
    opset: int = defaults.OPSET.value,
    sample_texts: Sequence[str] | None = None,
    atol: float = defaults.ATOL.value,
    int8_floor: float = defaults.INT8_FLOOR.value,
    per_channel: bool = True,
    preprocess: bool = True,
    threads: int | None = None,
) -> ExportReport:
    """Export ``model_dir`` to ``output_dir/model.onnx`` (int8 if ``quantize="int8"``) and verify it."""
    started = time.perf_counter()
    source = str(model_dir)  # as given: a hub id stays one in the report and loraner.json
    model, output_dir = ModelDir.find(model_dir), Path(output_dir)  # a hub id is downloaded
    check_quantization(quantize)
    check_opset(opset)
    texts = export_sample(sample_texts)

    torch_predictor = reference_predictor(model, threads)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loraner-onnx-") as tmp:
        fp32_path = Path(tmp) / "model.fp32.onnx"
        _torch_export(model.path, fp32_path, opset)
        fp32_backend = OnnxBackend.from_file(fp32_path, threads)
        report = ExportReport.of_fp32_graph(
            torch_predictor,
            fp32_backend,
            sample_windows(torch_predictor, texts),
            runtime="ONNX",
            folder=output_dir,
            model_dir=source,
            output_dir=output_dir,
            quantization=quantize,
            sample_texts=len(texts),
            atol=atol,
            opset=opset,
        )
        final_path = fp32_path
        if quantize == "int8":
            final_path = Path(tmp) / "model.int8.onnx"
            report.int8 = _quantize_and_check(
                fp32_path,
                final_path,
                torch_predictor,
                texts,
                per_channel,
                preprocess,
                int8_floor,
                threads,
            )
            if report.int8["entity_agreement"] < int8_floor:
                report.write(output_dir)
                raise ModelError(
                    f"int8 entity agreement {report.int8['entity_agreement']:.3f} is below the floor "
                    f"{int8_floor} on {len(texts)} texts; export fp32 instead or lower --int8-floor"
                )
        shutil.copyfile(final_path, output_dir / ONNX_FILE)
    onnx = {"source": source, "opset": opset, "quantization": quantize or "none"}
    copy_companions(
        model, output_dir, torch_predictor.tokenizer, max_length=torch_predictor.max_length, onnx=onnx
    )
    report.seconds = round(time.perf_counter() - started, 2)
    report.write(output_dir)
    make_readable(output_dir)
    log.info("exported %s to %s (%s)", model.path, output_dir / ONNX_FILE, quantize or "fp32")
    return report


def _torch_export(model_dir: Path, target: Path, opset: int) -> None:
    wrapper = traceable_model(model_dir)
    ids = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
            torch.onnx.export(
                wrapper,
                (ids, mask),
                str(target),
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": axes},
                opset_version=opset,
                do_constant_folding=True,
                # The TorchScript exporter: dynamo export needs onnxscript and handles these
                # dynamic sequence lengths less reliably for encoder models.
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types
        raise ModelError(f"torch.onnx.export failed for {model_dir}: {exc}") from exc


def _quantize_and_check(
    fp32_path: Path,
    int8_path: Path,
    torch_predictor: Any,
    texts: Sequence[str],
    per_channel: bool,
    preprocess: bool,
    floor: float,
    threads: int | None,
) -> dict[str, Any]:
    kept_fp32 = quantize_int8(fp32_path, int8_path, per_channel, preprocess)
    fp32_backend = OnnxBackend.from_file(fp32_path, threads)
    int8_backend = OnnxBackend.from_file(int8_path, threads)
    return {
        "weight_type": "QInt8",
        "reduce_range": True,
        "per_channel": per_channel,
        "fp32_matmuls": kept_fp32,
        "preprocessed": preprocess,
        **entity_parity(torch_predictor, fp32_backend, int8_backend, texts),
        "floor": floor,
        "size_mb_fp32": round(fp32_path.stat().st_size / 2**20, 2),
        "size_mb_int8": round(int8_path.stat().st_size / 2**20, 2),
    }


def quantize_int8(fp32_path: Path, int8_path: Path, per_channel: bool, preprocess: bool) -> list[str]:
    """Dynamic int8 (onnxruntime.quantization): weights int8, activations quantized per call. Only
    matrix products with a constant weight are quantized: one whose weight is a graph input stays fp32.
    Returns the names of the matrix products kept in fp32 (:func:`precision_sensitive_matmuls`).

    Weights use 7 bits (``reduce_range``): on CPUs without VNNI (AVX2 only) onnxruntime multiplies u8
    activations by s8 weights with VPMADDUBSW, whose 16-bit pair sums saturate at full 8-bit range. A
    trained MPNet-base lost every entity to that saturation on an AVX2 EPYC (agreement 0.00 against 0.98
    with 7 bits), and a graph exported on a VNNI machine may be served on an AVX2 one."""
    source = _preprocess(fp32_path) if preprocess else fp32_path
    try:
        kept_fp32 = precision_sensitive_matmuls(onnx.load(str(source)))
        quantize_dynamic(
            str(source),
            str(int8_path),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=True,
            nodes_to_exclude=kept_fp32,
        )
    except Exception as exc:  # onnxruntime.quantization raises untyped errors
        raise ModelError(f"int8 quantization failed: {exc}") from exc
    return kept_fp32


def precision_sensitive_matmuls(graph: onnx.ModelProto) -> list[str]:
    """The matrix products with a constant weight that int8 keeps in fp32 (:func:`kept_in_fp32`)."""
    initializers = {init.name: tuple(init.dims) for init in graph.graph.initializer}
    return kept_in_fp32(
        [
            (node.name, *initializers[node.input[1]])
            for node in graph.graph.node
            if node.op_type == "MatMul" and len(initializers.get(node.input[1], ())) == 2
        ]
    )


def _preprocess(fp32_path: Path) -> Path:
    """onnxruntime's recommended pre-quantization pass: shape inference plus graph optimisation."""
    target = fp32_path.with_name("model.pre.onnx")
    # Symbolic shape inference is skipped: it fails on exported BERT graphs and leaves temporary
    # files in the working directory; plain ONNX shape inference is enough for dynamic quantization.
    try:
        quant_pre_process(str(fp32_path), str(target), skip_symbolic_shape=True)
    except Exception as exc:  # shape inference raises untyped errors on unusual graphs
        raise ModelError(f"pre-quantization processing failed ({exc}); retry with --no-preprocess") from exc
    return target
