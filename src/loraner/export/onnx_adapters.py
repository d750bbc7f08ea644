"""Export a base model and its LoRA adapters for ONNX Runtime: one int8 base graph, each adapter in ONNX
Runtime's adapter format (what :mod:`loraner.inference.onnx_adapters` serves, without PyTorch).

The output directory::

    lora_base.onnx           the base encoder, linear layers dynamically quantized to int8; the LoRA
                             branches, bias deltas and head are inputs (see the runtime's docstring)
    tokenizer files, config.json, loraner.json (base model, its fingerprint, the graph's LoRA layers)
    adapters/NAME/           the PEFT adapter directory as given, plus adapter.onnx_adapter
    export_report.json

Each adapter's values are read from PEFT itself, loaded by the PyTorch pool: LoRA A and B with PEFT's
scaling folded into B, the difference of its trained biases from the base's (``bias: lora_only``) and
its classifier head. The graph carries a branch on every linear layer some adapter adapts (the union of
their target modules); a layer an adapter leaves alone gets the graph's defaults (rank 0, zero bias).
An adapter whose trained biases are not those of linear layers (``bias: all`` changes LayerNorms too)
cannot be run by the graph and is refused by name.

Checks, as ``loraner export onnx`` makes them (the export fails rather than ship a disagreement): per
adapter, the fp32 graph's logits against PyTorch's (``atol``), and the int8 graph's entities against the
PyTorch fp32 adapter's on the sample (``int8_floor``).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loraner import __version__, defaults
from loraner.errors import ModelError
from loraner.export.onnx import check_opset, quantize_int8
from loraner.export.parity import (
    check_quantization,
    entity_parity,
    export_sample,
    logits_parity,
    sample_windows,
    traceable_model,
)
from loraner.inference.adapters import (
    PEFT_PREFIX,
    AdapterBackend,
    AdapterPool,
    AdapterRefused,
    MultiAdapterPredictor,
    adapter_dirs,
)
from loraner.inference.onnx_adapters import BIAS_DELTA, HEAD_BIAS, HEAD_WEIGHT, LORA_A, LORA_B
from loraner.modeldir import (
    EXPORT_REPORT_FILE,
    HEAD_MODULE,
    ONNX_ADAPTER_FILE,
    ONNX_ADAPTERS_DIR,
    ONNX_LORA_BASE_FILE,
    copy_companions,
    make_readable,
)

__all__ = ["AdaptersExportReport", "export_onnx_adapters"]

log = logging.getLogger(__name__)
TRACE_RANK = 2  # the rank of the example inputs the graph is traced with (any rank runs)
TRACE_LABELS = 3


@dataclass
class AdaptersExportReport:
    """What ``export_onnx_adapters`` checked, also written to ``export_report.json``: per adapter, the fp32
    graph's largest logit difference and token agreement with PyTorch, and the int8 graph's entity
    agreement with the PyTorch fp32 adapter; with int8, the base's matrix products kept in fp32
    (:func:`~loraner.export.onnx.precision_sensitive_matmuls`)."""

    base: str
    output_dir: str
    opset: int
    quantization: str | None
    layers: int
    sample_texts: int
    atol: float
    int8_floor: float
    adapters: dict[str, dict[str, Any]] = field(default_factory=dict)
    fp32_matmuls: list[str] = field(default_factory=list)
    size_mb: float = 0.0
    seconds: float = 0.0
    loraner_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx_adapters(
    base: str | Path,
    adapters: Mapping[str, str | Path] | str | Path,
    output_dir: str | Path,
    *,
    quantize: str | None = "int8",
    opset: int = defaults.OPSET.value,
    sample_texts: Sequence[str] | None = None,
    atol: float = defaults.ATOL.value,
    int8_floor: float = defaults.INT8_FLOOR.value,
    per_channel: bool = True,
    preprocess: bool = True,
    threads: int | None = None,
) -> AdaptersExportReport:
    """Export ``base`` with ``adapters`` (name -> adapter directory, or a folder of them) to
    ``output_dir`` and verify each adapter through the graph against PyTorch."""
    started = time.perf_counter()
    quantize = check_quantization(quantize, none=True)
    check_opset(opset)
    texts = export_sample(sample_texts)
    sources = dict(adapters) if isinstance(adapters, Mapping) else adapter_dirs(adapters)
    output_dir = Path(output_dir)

    # The reference: the PyTorch fp32 pool, every adapter loaded (PEFT computes what the graph is fed).
    reference = MultiAdapterPredictor.from_pretrained(
        str(base),
        sources,
        backend="torch",
        dtype="fp32",
        quantization="none",
        max_loaded=None,
        threads=threads,
    )
    pool = reference.pool
    if not isinstance(pool, AdapterPool):  # from_pretrained with backend torch makes one
        raise TypeError(f"expected a PyTorch adapter pool, got {type(pool).__name__}")
    values = {}
    for name in reference.names:
        pool.ensure(name)
        values[name] = adapter_values(pool, name)
    layers = [layer for layer in pool.linear_shapes if any(LORA_A + layer in v for v in values.values())]
    hidden = int(pool.model.config.hidden_size)
    report = AdaptersExportReport(
        str(base), str(output_dir), opset, quantize, len(layers), len(texts), atol, int8_floor
    )

    output_dir.mkdir(parents=True, exist_ok=True)
    adapters_out = output_dir / ONNX_ADAPTERS_DIR
    exported: dict[str, Path] = {}
    for name, adapter in reference.adapters.items():
        target = adapters_out / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(adapter.path, target)
        write_adapter(target / ONNX_ADAPTER_FILE, values[name])
        exported[name] = target
    defaults_of = graph_defaults(layers, pool.linear_shapes, hidden)
    lora = {"layers": layers}
    try:
        with tempfile.TemporaryDirectory(prefix="loraner-onnx-adapters-") as tmp:
            fp32_path = Path(tmp) / "fp32.onnx"
            _torch_export(pool.base.path, layers, pool.linear_shapes, hidden, fp32_path, opset)
            add_defaults(fp32_path, output_dir / ONNX_LORA_BASE_FILE, defaults_of)
            _write_companions(reference, output_dir, str(base), opset, "none", lora)
            graph = MultiAdapterPredictor.from_pretrained(
                str(output_dir), exported, backend="onnx", threads=threads
            )
            for name in reference.names:
                windows = sample_windows(reference.predictor(name), texts)
                max_diff, agreement = logits_parity(
                    AdapterBackend(pool, name),
                    AdapterBackend(graph.pool, name),
                    windows,
                    reference.predictor(name).pad_id,
                )
                report.adapters[name] = {
                    "layers": sum(k.startswith(LORA_A) for k in values[name]),
                    "windows": len(windows),
                    "fp32_max_abs_diff": max_diff,
                    "fp32_token_agreement": round(agreement, 4),
                }
                if not max_diff <= atol:
                    _write_report(output_dir, report)
                    raise ModelError(
                        f"adapter {name!r}: the ONNX fp32 graph's logits differ from PyTorch by "
                        f"{max_diff:.2e} (> atol {atol:.0e}); see {output_dir / EXPORT_REPORT_FILE}"
                    )
            del graph
            if quantize == "int8":
                int8_path = Path(tmp) / "int8.onnx"
                report.fp32_matmuls = quantize_int8(fp32_path, int8_path, per_channel, preprocess)
                add_defaults(int8_path, output_dir / ONNX_LORA_BASE_FILE, defaults_of)
                _write_companions(reference, output_dir, str(base), opset, "int8", lora)
                graph = MultiAdapterPredictor.from_pretrained(
                    str(output_dir), exported, backend="onnx", threads=threads
                )
                for name in reference.names:
                    scores = entity_parity(
                        reference.predictor(name),
                        AdapterBackend(pool, name),
                        AdapterBackend(graph.pool, name),
                        texts,
                    )
                    report.adapters[name]["int8"] = scores
                low = {
                    n: a["int8"]["entity_agreement"]
                    for n, a in report.adapters.items()
                    if a["int8"]["entity_agreement"] < int8_floor
                }
                if low:
                    _write_report(output_dir, report)
                    raise ModelError(
                        f"int8 entity agreement below the floor {int8_floor} on {len(texts)} texts: "
                        + ", ".join(f"{n} {v:.3f}" for n, v in low.items())
                        + "; export with --quantize none or lower --int8-floor"
                    )
    except BaseException:
        # A graph that failed its checks (or half-written) is not left to be served: no silent fall back.
        (output_dir / ONNX_LORA_BASE_FILE).unlink(missing_ok=True)
        raise
    report.size_mb = round((output_dir / ONNX_LORA_BASE_FILE).stat().st_size / 2**20, 2)
    report.seconds = round(time.perf_counter() - started, 2)
    _write_report(output_dir, report)
    make_readable(output_dir)
    log.info("exported %s with %d adapters to %s", base, len(exported), output_dir)
    return report


def adapter_values(pool: AdapterPool, name: str) -> dict[str, np.ndarray]:
    """What the graph is fed for adapter ``name`` (loaded in ``pool``), by graph input: LoRA A and B
    (PEFT's scaling folded into B), bias deltas, the head. Read from PEFT's modules, so PEFT's own
    scaling rules (rsLoRA, per-layer alphas) hold."""
    values: dict[str, np.ndarray] = {}
    for module_name, module in pool.peft.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if lora_a is None or name not in lora_a:
            continue
        layer = module_name.removeprefix(PEFT_PREFIX)
        scaling = float(module.scaling[name])
        a, b = lora_a[name].weight.detach().float(), module.lora_B[name].weight.detach().float()
        values[LORA_A + layer] = a.T.contiguous().numpy()
        values[LORA_B + layer] = (b * scaling).T.contiguous().numpy()
        if getattr(module.lora_B[name], "bias", None) is not None:  # PEFT's lora_bias: inside the scaling
            values[BIAS_DELTA + layer] = (module.lora_B[name].bias.detach().float() * scaling).numpy()
    for key, deltas in pool.bias_deltas.items():
        if name not in deltas:
            continue
        layer = key.removeprefix(PEFT_PREFIX)
        if layer not in pool.linear_shapes:
            raise AdapterRefused(
                name,
                pool.sources[name].path,
                f"it trains the bias of {layer}, which is not a linear layer: the ONNX graph carries bias "
                "changes on linear layers only (train with bias none or lora_only)",
            )
        delta = deltas[name].detach().float().numpy()
        values[BIAS_DELTA + layer] = values.get(BIAS_DELTA + layer, 0) + delta
    head = pool.heads[name]
    values[HEAD_WEIGHT] = head.weight.detach().float().T.contiguous().numpy()
    labels = head.weight.shape[0]
    values[HEAD_BIAS] = (
        head.bias.detach().float().numpy() if head.bias is not None else np.zeros(labels, dtype=np.float32)
    )
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in values.items()}


def write_adapter(path: Path, values: Mapping[str, np.ndarray]) -> None:
    """``values`` as an ONNX Runtime adapter file (``onnxruntime.AdapterFormat``)."""
    import onnxruntime as ort

    adapter = ort.AdapterFormat()
    adapter.set_parameters({k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in values.items()})
    adapter.export_adapter(str(path))


def graph_defaults(
    layers: Sequence[str], linear_shapes: Mapping[str, tuple[int, ...]], hidden: int
) -> dict[str, np.ndarray]:
    """The value of each adapter input when the active adapter has none: rank 0, zero bias, no labels."""
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        out_features, in_features = linear_shapes[layer]
        out[LORA_A + layer] = np.zeros((in_features, 0), dtype=np.float32)
        out[LORA_B + layer] = np.zeros((0, out_features), dtype=np.float32)
        out[BIAS_DELTA + layer] = np.zeros((out_features,), dtype=np.float32)
    out[HEAD_WEIGHT] = np.zeros((hidden, 0), dtype=np.float32)
    out[HEAD_BIAS] = np.zeros((0,), dtype=np.float32)
    return out


def add_defaults(source: Path, target: Path, values: Mapping[str, np.ndarray]) -> None:
    """``source`` with an initializer of the same name for each adapter input: ONNX Runtime then treats
    those inputs as overridable, fed by the active adapter. Added after quantization, which would
    otherwise take the LoRA matrices for constant weights."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    inputs = {i.name for i in model.graph.input}
    missing = sorted(set(values) - inputs)
    if missing:
        raise ModelError(f"the exported graph lacks the adapter inputs {missing[:3]}")
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in values.items())
    onnx.save(model, str(target))


def _torch_export(
    base_path: Path,
    layers: Sequence[str],
    linear_shapes: Mapping[str, tuple[int, ...]],
    hidden: int,
    target: Path,
    opset: int,
) -> None:
    """The base token classifier with a LoRA branch on each of ``layers`` and its head, their weights
    all inputs, traced to ONNX (fp32)."""
    model = traceable_model(base_path).model  # eager attention: traces to plain ops
    modules = dict(model.named_modules())
    slots: list[Any] = []
    for layer in layers:
        parent_name, _, child = layer.rpartition(".")
        slot = _LoraInputs(modules[layer])
        setattr(modules[parent_name] if parent_name else model, child, slot)
        slots.append(slot)
    head = _HeadInputs()
    setattr(model, HEAD_MODULE, head)
    wrapper = _GraphWithInputs(model.eval(), slots, head).eval()

    generator = torch.Generator().manual_seed(0)
    names: list[str] = []
    examples: list[torch.Tensor] = []
    axes: dict[str, dict[int, str]] = {}
    for i, layer in enumerate(layers):
        out_features, in_features = linear_shapes[layer]
        rank = f"rank_{i}"
        names += [LORA_A + layer, LORA_B + layer, BIAS_DELTA + layer]
        examples += [
            torch.randn(in_features, TRACE_RANK, generator=generator) * 0.01,
            torch.randn(TRACE_RANK, out_features, generator=generator) * 0.01,
            torch.randn(out_features, generator=generator) * 0.01,
        ]
        axes |= {LORA_A + layer: {1: rank}, LORA_B + layer: {0: rank}}
    names += [HEAD_WEIGHT, HEAD_BIAS]
    examples += [
        torch.randn(hidden, TRACE_LABELS, generator=generator),
        torch.randn(TRACE_LABELS, generator=generator),
    ]
    axes |= {HEAD_WEIGHT: {1: "labels"}, HEAD_BIAS: {0: "labels"}}
    ids = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    batch = {0: "batch", 1: "sequence"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
            torch.onnx.export(
                wrapper,
                (ids, mask, *examples),
                str(target),
                input_names=["input_ids", "attention_mask", *names],
                output_names=["logits"],
                dynamic_axes={
                    "input_ids": batch,
                    "attention_mask": batch,
                    "logits": {**batch, 2: "labels"},
                    **axes,
                },
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,  # as export/onnx.py: the TorchScript exporter
            )
    except Exception as exc:  # the exporter raises many unrelated types
        raise ModelError(f"torch.onnx.export failed for the LoRA base of {base_path}: {exc}") from exc


class _LoraInputs(torch.nn.Module):
    """A base linear layer plus a LoRA branch and bias delta whose weights are set per call."""

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        self.base = base
        self.inputs: tuple[torch.Tensor, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lora_a, lora_b, bias_delta = self.inputs
        return self.base(x) + (x @ lora_a) @ lora_b + bias_delta


class _HeadInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: tuple[torch.Tensor, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.inputs
        return x @ weight + bias


class _GraphWithInputs(torch.nn.Module):
    """``(input_ids, attention_mask, *adapter inputs) -> logits``: the adapter inputs handed to their
    layers (three per layer, in order, then the head's two) before the model runs."""

    def __init__(self, model: Any, slots: Sequence[_LoraInputs], head: _HeadInputs) -> None:
        super().__init__()
        self.model = model
        self.slots = list(slots)
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *inputs: torch.Tensor) -> Any:
        for i, slot in enumerate(self.slots):
            slot.inputs = tuple(inputs[3 * i : 3 * i + 3])
        self.head.inputs = tuple(inputs[-2:])
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _write_companions(
    reference: MultiAdapterPredictor,
    output_dir: Path,
    source: str,
    opset: int,
    quantization: str,
    lora: dict[str, Any],
) -> None:
    """The tokenizer, ``config.json`` and ``loraner.json`` beside the graph: the base model's, with the
    fingerprint adapters are checked against and what the graph is (its quantization, LoRA layers)."""
    pool = reference.pool
    onnx = {"source": source, "opset": opset, "quantization": quantization, "lora": lora}
    updates: dict[str, Any] = {"base_model": source, "base_fingerprint": pool.fingerprint, "onnx": onnx}
    meta_source = pool.base
    try:
        _ = pool.base.meta
    except ModelError:
        # A base as published (a hub encoder, no head) has no labels of its own: the graph's record takes
        # the window and labels of the first adapter; served, each adapter decodes with its own.
        meta_source = next(iter(reference.adapters.values()))
        updates |= {"lora": False, "config": None, "name": None}
    copy_companions(pool.base, output_dir, reference.tokenizer, meta_source=meta_source, **updates)


def _write_report(output_dir: Path, report: AdaptersExportReport) -> None:
    (output_dir / EXPORT_REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
