"""Model runtimes behind one method: ``logits(input_ids, attention_mask) -> (batch, seq, labels)``.

``TorchBackend`` runs a Transformers checkpoint; ``OnnxBackend`` runs ``model.onnx`` with onnxruntime
and ``OpenVinoBackend`` an OpenVINO IR (``openvino/model.xml``); neither imports torch, so a serving
image can leave PyTorch out. Each takes its runtime object as a parameter (a model, an
``InferenceSession``, a compiled OpenVINO model) so tests and callers can inject one, and so several
backends (e.g. one per LoRA adapter) can sit behind one tokenizer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import pickle
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol, get_args, runtime_checkable

import numpy as np

from loraner import defaults
from loraner.errors import ModelError
from loraner.modeldir import (
    ONNX_ADAPTERS_DIR,
    ONNX_FILE,
    OPENVINO_DIR,
    SAFETENSORS_FILE,
    TORCH_WEIGHT_PATTERNS,
    ModelDir,
    base_fingerprint,
    check_base,
    openvino_model,
)

BackendName = Literal["auto", "torch", "onnx", "openvino"]
BACKENDS: tuple[str, ...] = get_args(BackendName)
# The torch backend's weights: ``auto`` is bf16 where the CPU computes it natively, fp32 elsewhere.
DType = Literal["auto", "fp32", "bf16"]
DTYPES: tuple[str, ...] = get_args(DType)
# A multi-adapter base's linear layers (loraner.inference.int8).
BaseQuantization = Literal["none", "int8", "auto"]
BASE_QUANTIZATIONS: tuple[str, ...] = get_args(BaseQuantization)


@runtime_checkable
class Backend(Protocol):
    """A runtime (torch, ONNX Runtime, OpenVINO): the logits ``[batch, tokens, labels]`` of a padded batch of
    windows. The predictor does everything else (windows, batches, decoding)."""

    name: str

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


def default_threads() -> int:
    """Intra-op threads when none are given: the cores this process may run on, set explicitly rather
    than left to each runtime's own guess. (A container CPU quota is invisible here: pass ``threads``.)"""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class TorchBackend:
    """A PyTorch token classifier: a loaded checkpoint, or the model being trained (training-time
    validation runs through the same engine as serving). Runs in eval mode, then restores the model's
    mode, so it can be called between training steps."""

    name = "torch"

    def __init__(
        self, model: Any, device: str | None = None, dtype: str = "fp32", autocast: bool = False
    ) -> None:
        """``autocast``: run fp32 weights under bf16 autocast (validation of a bf16 mixed-precision
        training run, which scores the model as it trains)."""
        self.model = model
        self.device = device
        self.dtype = dtype
        self.autocast = autocast

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | ModelDir,
        device: str = defaults.DEVICE.value,
        threads: int | None = None,
        *,
        base: str | None = None,
        dtype: str = defaults.DTYPE.value,
        compile: bool = defaults.COMPILE.value,
    ) -> TorchBackend:
        """A merged/full model directory, any Hugging Face checkpoint, or a LoRA adapter directory (its
        base model, recorded in ``loraner.json`` or given as ``base``, is loaded and the adapter
        attached, unmerged). ``dtype``: ``fp32``, ``bf16`` or ``auto`` (see :func:`resolve_dtype`).
        ``compile``: see :func:`compile_for_inference`."""
        torch = _import_torch()
        if threads:
            # Process-wide in PyTorch: the last predictor created decides.
            torch.set_num_threads(threads)
        resolved = resolve_dtype(dtype, device)
        model_dir = ModelDir.of(path)
        if model_dir.is_adapter:
            model = load_adapter_model(model_dir, base, dtype=resolved)
        elif base is not None:
            raise ModelError(f"{path}: a base model goes with a LoRA adapter directory, not a full model")
        else:
            model = load_token_classifier(model_dir, dtype=resolved)
        model = model.eval().to(device=device, dtype=torch_dtype(resolved))
        return cls(compile_for_inference(model) if compile else model, device, resolved)

    @property
    def vocab_size(self) -> int | None:
        """Rows of the input embeddings: the highest token id the model can take, plus one."""
        embeddings = getattr(self.model, "get_input_embeddings", lambda: None)()
        return getattr(embeddings, "num_embeddings", None)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch  # present whenever a TorchBackend exists

        device = self.device or next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        autocast = torch.autocast(torch.device(device).type, torch.bfloat16, enabled=self.autocast)
        ids = torch.from_numpy(input_ids).to(device)
        mask = torch.from_numpy(attention_mask).to(device)
        dynamo = sys.modules.get("torch._dynamo")  # not imported: the model cannot be a compiled one
        if dynamo is not None and isinstance(self.model, dynamo.eval_frame.OptimizedModule):
            # The batch size as a size known only at run time (compile_for_inference says why).
            dynamo.decorators.mark_unbacked(ids, 0)
            dynamo.decorators.mark_unbacked(mask, 0)
        try:
            with torch.inference_mode(), autocast:
                out = self.model(input_ids=ids, attention_mask=mask).logits
        finally:
            self.model.train(was_training)
        return out.float().cpu().numpy()


def compile_for_inference(model: Any) -> Any:
    """``torch.compile`` for serving: inductor with the weights frozen as constants, so oneDNN packs them
    once instead of on every call, and shapes dynamic. With ``dynamic=True`` alone Dynamo still
    specializes a size of 0 or 1, so the one-window batch of the dry run a server makes before it
    reports ready would compile a graph for batch size 1, and the first batch of two or more would
    compile another one while requests wait; :meth:`TorchBackend.logits` marks the batch dimension as
    known only at run time (``mark_unbacked``), so the first call's graph serves every batch size,
    one included, and every length. The first call compiles (about 50 s for RoBERTa-base on 2 cores; a
    C++ compiler must be installed). Measured on Zen 4 (AVX512-BF16), 2 threads, RoBERTa-base shape,
    ``make bench``: bf16 single-sentence p50 31.5 ms against 53.8 eager; 48.7 against 44.9
    sentences/s in batches (2.24x eager fp32). fp32 gained nothing in our runs, so compile where bf16
    runs."""
    import torch._inductor.config as inductor_config  # present whenever a TorchBackend exists

    inductor_config.freezing = True  # process-wide: read when a compiled model is first called
    return _import_torch().compile(model, dynamic=True)


def native_bf16() -> bool:
    """True when this CPU has bf16 instructions (AMX-BF16 tiles or AVX512-BF16), by PyTorch's own checks.

    Where bf16 is emulated (AVX2 only) it runs several times slower than fp32, so ``auto`` stays fp32."""
    torch = _import_torch()
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_dtype(dtype: str, device: str = defaults.DEVICE.value) -> str:
    """``auto`` -> ``bf16`` on a CPU with native bf16, ``fp32`` otherwise (and on other devices)."""
    if dtype not in DTYPES:
        raise ModelError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    return "bf16" if device == "cpu" and native_bf16() else "fp32"


def resolve_base_quantization(quantization: str, dtype: str, device: str = defaults.DEVICE.value) -> str:
    """``none`` or ``int8`` for a multi-adapter base; ``auto`` -> :func:`int8_base_is_faster`. An int8
    base runs fp32 activations: it goes with ``dtype`` fp32 or auto, on the CPU."""
    if quantization not in BASE_QUANTIZATIONS:
        raise ModelError(f"base quantization {quantization!r} is not one of {', '.join(BASE_QUANTIZATIONS)}")
    if quantization == "auto":
        return "int8" if device == "cpu" and dtype != "bf16" and int8_base_is_faster() else "none"
    if quantization == "int8" and (device != "cpu" or dtype == "bf16"):
        raise ModelError(
            f"an int8 base runs on the CPU with fp32 activations (got device {device!r}, dtype {dtype!r})"
        )
    return quantization


def int8_base_is_faster() -> bool:
    """Whether this CPU is one where the int8 base was measured faster than the base ``dtype=auto``
    gives (the int8 rows of the bench's ``adapters`` workload). None is recorded yet, so ``auto`` keeps
    that base everywhere; a CPU class joins here with its measured rows."""
    return False


def torch_dtype(dtype: str) -> Any:
    torch = _import_torch()
    return torch.bfloat16 if dtype == "bf16" else torch.float32


def _import_torch() -> Any:
    try:
        import torch  # optional: the ONNX service runs without it
    except ImportError as exc:
        raise ModelError(f"the torch backend needs PyTorch ({exc}); use backend='onnx'") from exc
    return torch


def load_token_classifier(
    name_or_path: str | Path | ModelDir, labels: list[str] | None = None, dtype: str = "fp32"
) -> Any:
    """A Transformers token-classification model: a model directory, or any model name (path,
    ``pkg:MODULE``, hub id). With ``labels``, a new head of that size (a base model for training, or the
    base an adapter's head is restored onto). ``dtype`` (``fp32``/``bf16``): the weights are loaded in
    it, so a bf16 model never holds an fp32 copy in memory."""
    _import_torch()
    from transformers import AutoModelForTokenClassification  # imports torch: only with a torch backend

    model_dir = ModelDir.find(name_or_path)
    if model_dir.path.is_dir():  # name the file it cannot read (see check_readable)
        model_dir.check_readable()
    path = str(model_dir.path)
    head: dict[str, Any] = {}
    if labels is not None:
        id2label = dict(enumerate(labels))
        head = {
            "num_labels": len(labels),
            "id2label": id2label,
            "label2id": {label: i for i, label in id2label.items()},
            "ignore_mismatched_sizes": True,
        }
    checkpoint = model_dir.path / SAFETENSORS_FILE
    try:
        if dtype == "bf16" and checkpoint.is_file():
            return _bf16_from_state_dict(path, checkpoint, head)
        return AutoModelForTokenClassification.from_pretrained(path, dtype=torch_dtype(dtype), **head)
    except PermissionError as exc:
        raise ModelError(f"cannot load a model from {path!r}: permission denied ({exc.filename})") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a token-classification model from {path!r}: {exc}") from exc
    except pickle.UnpicklingError:
        raise ModelError(
            f"{path}: its PyTorch checkpoint holds objects other than tensors, which loraner refuses "
            "to unpickle (torch.load weights_only); save it as safetensors from a trusted copy"
        ) from None


def _bf16_from_state_dict(path: str, checkpoint: Path, head: dict[str, Any]) -> Any:
    """``from_pretrained`` in bf16 without its memory peak: Transformers keeps the whole fp32 file mapped
    while it casts (1.1 GB peak for RoBERTa-base, over a 1 GB instance's budget). Here each tensor is
    read and cast with the file mapped only for that tensor (0.6 GB peak); Transformers still matches
    the keys, initialises a new head and checks shapes, as from the file."""
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING

    with safe_open(checkpoint, "pt") as handle:
        names = list(handle.keys())
    state = {}
    for name in names:
        with safe_open(checkpoint, "pt") as handle:  # closing it unmaps the pages this tensor touched
            state[name] = handle.get_tensor(name).to(torch.bfloat16)
    settings = {k: v for k, v in head.items() if k != "ignore_mismatched_sizes"}
    config = AutoConfig.from_pretrained(path, **settings)
    model_class = MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING[type(config)]
    extra = {"ignore_mismatched_sizes": True} if head else {}
    model = model_class.from_pretrained(None, config=config, state_dict=state, dtype=torch.bfloat16, **extra)
    model.name_or_path = model.config.name_or_path = path  # as from the file: PEFT records it as the base
    return model


def load_adapter_model(
    adapter_dir: str | Path | ModelDir, base: str | None = None, dtype: str = "fp32"
) -> Any:
    """The base model with the LoRA adapter (and its trained classifier head) attached, unmerged."""
    from peft import PeftModel  # a [train] extra: only adapters need it

    adapter = ModelDir.of(adapter_dir)
    meta = adapter.meta
    base_name = base or meta.base_model
    if not base_name:
        raise ModelError(f"{adapter}: the base model is unknown (no base_model in loraner.json); pass --base")
    base_model = load_token_classifier(base_name, meta.labels, dtype=dtype)
    check_base(adapter.path, meta, base_name, base_fingerprint(base_model))
    return PeftModel.from_pretrained(base_model, str(adapter.path)).eval()


class OnnxBackend:
    name = "onnx"

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_names = {i.name for i in session.get_inputs()}
        self.output_name = session.get_outputs()[0].name

    @classmethod
    def from_file(cls, path: str | Path, threads: int | None = None) -> OnnxBackend:
        path = Path(path)
        if not path.exists():
            raise ModelError(f"{path}: no ONNX model (create one with `loraner export onnx`)")
        return cls(onnx_session(path, threads))

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        feed = {k: v for k, v in feed.items() if k in self.input_names}
        return np.asarray(self.session.run([self.output_name], feed)[0], dtype=np.float32)


def onnx_session(path: Path, threads: int | None = None, *, overridable_inputs: bool = False) -> Any:
    """An ONNX Runtime CPU session for ``path``, set up as every loraner graph runs.

    ``overridable_inputs``: the graph has initializers listed among its inputs on purpose (the LoRA
    inputs of :mod:`loraner.inference.onnx_adapters`, defaults an adapter overrides); ONNX Runtime's
    warning for each of them is silenced."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError(f"the onnx backend needs onnxruntime ({exc}): pip install 'loraner[onnx]'") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    # Parallelism comes from intra-op threads and from concurrent requests, not from graph branches.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No grow-only arena: activations are freed after each call, so a service's memory falls back
    # after a long text and its peak stays lower; no measurable change in speed (bench/README.md).
    options.enable_cpu_mem_arena = False
    # Memory patterns are planned per input shape and kept; every request has a new length.
    options.enable_mem_pattern = False
    if overridable_inputs:
        options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"{path}: onnxruntime cannot load it: {exc}") from exc
    release_free_heap()
    return session


class OpenVinoBackend:
    """An OpenVINO IR (``loraner export openvino``: fp32, or NNCF static int8) on OpenVINO's CPU plugin.

    Each thread gets its own infer request (a request is not safe to share), all over one compiled model.
    """

    name = "openvino"

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.input_names = {name for port in compiled.inputs for name in port.get_names()}
        self._requests = threading.local()

    @property
    def precision(self) -> str:
        """The precision OpenVINO runs the graph's floating-point parts in (``f32``, ``bf16``): a bf16
        hint falls back to f32 on a CPU without bf16 instructions."""
        return str(self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())

    @classmethod
    def from_file(
        cls, path: str | Path, threads: int | None = None, dtype: str = defaults.DTYPE.value
    ) -> OpenVinoBackend:
        """``dtype``: the precision hint for fp32 parts of the graph. ``auto`` leaves OpenVINO's own
        choice (bf16 where the CPU computes it natively, f32 elsewhere), ``fp32`` and ``bf16`` pin it."""
        try:
            import openvino as ov
        except ImportError as exc:
            raise ModelError(
                f"the openvino backend needs OpenVINO ({exc}): pip install 'loraner[openvino]'"
            ) from exc
        if dtype not in DTYPES:
            raise ModelError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no OpenVINO IR (create one with `loraner export openvino`)")
        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": threads or default_threads(),
            # One stream: the threads work on one call at a time (as ONNX Runtime's intra-op threads).
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
        }
        if dtype != "auto":
            config["INFERENCE_PRECISION_HINT"] = "bf16" if dtype == "bf16" else "f32"
        try:
            core = ov.Core()
            compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError with its own messages for bad files
            raise ModelError(f"{path}: OpenVINO cannot load it: {exc}") from exc
        release_free_heap()
        return cls(compiled)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        feed = {k: v for k, v in feed.items() if k in self.input_names}
        request.infer(feed)
        # A copy: the request reuses its output buffer on the next call.
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)


def _glibc() -> Any:
    """The C library, for glibc's malloc controls; None where it cannot be loaded."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (``MALLOC_ARENA_MAX``; a no-op elsewhere). Call before threads start.

    glibc gives each thread that allocates its own arena (up to 8 per core); a service whose requests
    run on a pool of worker threads then keeps freed activation memory spread over many arenas, and its
    RSS creeps up request after request. Two arenas keep the peak close to one request's working set.
    """
    m_arena_max = -8  # from glibc's malloc.h
    mallopt = getattr(_glibc(), "mallopt", None)  # not glibc (musl, macOS, Windows): nothing to set
    if mallopt is not None:
        mallopt(m_arena_max, int(arenas))


def release_free_heap() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Loading a model parses the whole file and copies its weights, then frees the parse buffers; glibc
    keeps those pages, so an int8 RoBERTa-base session held about 75 MB of RSS it no longer used.
    """
    malloc_trim = getattr(_glibc(), "malloc_trim", None)  # not glibc: nothing to trim
    if malloc_trim is not None:
        malloc_trim(0)


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this CPU (``/proc/cpuinfo``; empty where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    try:
        lines = cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return frozenset()
    flags = (line.split(":", 1)[1].split() for line in lines if line.startswith("flags"))
    return frozenset(next(flags, ()))


CpuClass = Literal["AMX", "AVX512-BF16", "AVX512-VNNI", "AVX2", "other"]


def cpu_class(flags: frozenset[str] | None = None) -> CpuClass:
    """The class a CPU's speed is measured and judged for: what its fastest int8 and bf16 kernels use
    (``make bench`` prints it with every figure)."""
    flags = cpu_flags() if flags is None else flags
    if {"amx_bf16", "amx_int8"} & flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    if "avx512_vnni" in flags:
        return "AVX512-VNNI"
    return "AVX2" if "avx2" in flags else "other"


# The fastest int8 runtime per CPU class, as `make bench` measured it (its `inference` rows, same model,
# sentences and threads; docs/serving.md, "Which backend on which CPU"). `auto` takes an int8 OpenVINO IR
# only on a class named here with "openvino"; a class not listed keeps ONNX Runtime's int8.
#   AMX (Xeon Sapphire Rapids): OpenVINO static int8 359 vs ONNX dynamic int8 252 sent/s, model only.
#   AVX2 (EPYC Zen 3): OpenVINO static int8 16.2 vs ONNX dynamic int8 30.7 sent/s, model only (0.53x).
FASTEST_INT8: Final[Mapping[str, str]] = MappingProxyType({"AMX": "openvino", "AVX2": "onnx"})


def openvino_wins(model: ModelDir, cpu: str | None = None) -> bool:
    """True when ``model``'s OpenVINO IR is int8 and this CPU class (``cpu``) measured it fastest."""
    return model.openvino_quantization == "int8" and FASTEST_INT8.get(cpu or cpu_class()) == "openvino"


def resolve_backend_name(
    model_dir: Path | ModelDir, backend: str, device: str = defaults.DEVICE.value
) -> str:
    """``auto``: the fastest runtime ``model_dir`` offers on this CPU (measured: docs/serving.md, "Which
    backend on which CPU"). An int8 OpenVINO IR where :data:`FASTEST_INT8` says it wins on this CPU class.
    Else an int8 ``model.onnx`` beats every other runtime on every CPU class. An fp32 graph loses to bf16
    torch weights where the CPU computes bf16 natively (AMX Xeon: 44 vs 153 sent/s; Zen 4: 18 vs 40), so
    with both in the directory such a CPU gets torch. Elsewhere the graph is the choice (on AVX2 alone
    torch fp32 vs ONNX fp32 has not been measured). An OpenVINO IR alone is run by OpenVINO."""
    if backend not in BACKENDS:
        raise ModelError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    model = ModelDir.of(model_dir)
    only_ir = not (model.has_onnx or model.has_torch_weights)
    if model.has_openvino and device == "cpu" and (only_ir or openvino_wins(model)):
        return "openvino"
    if not model.has_onnx:
        return "torch"
    if model.onnx_quantization != "none" or not model.has_torch_weights:
        return "onnx"
    return "torch" if device == "cpu" and _torch_importable() and native_bf16() else "onnx"


def _torch_importable() -> bool:
    return importlib.util.find_spec("torch") is not None


def load_backend(
    model_dir: Path | ModelDir,
    backend: str = defaults.BACKEND.value,
    device: str = defaults.DEVICE.value,
    threads: int | None = None,
    onnx_file: str = ONNX_FILE,
    *,
    base: str | None = None,
    dtype: str = defaults.DTYPE.value,
    compile: bool = defaults.COMPILE.value,
) -> Backend:
    """The runtime for ``model_dir``; ``auto`` is :func:`resolve_backend_name`'s choice.
    ``base`` and ``compile`` apply to the torch backend only; ``dtype`` to torch's weights and to
    OpenVINO's precision hint."""
    model = ModelDir.of(model_dir)
    if model.has_onnx_lora_base and not (model.has_onnx or model.has_torch_weights or model.has_openvino):
        raise ModelError(
            f"{model}: a base graph for LoRA adapters (loraner export onnx-adapters), not a model alone: "
            f"serve it with its adapters, --base {model} --adapters {model}/{ONNX_ADAPTERS_DIR}"
        )
    kind = resolve_backend_name(model, backend, device)
    if kind == "openvino":
        if device != "cpu":
            raise ModelError(f"the openvino backend runs on cpu only (got device={device!r})")
        if base is not None:
            raise ModelError(f"{model}: an OpenVINO IR has its base built in; --base needs backend torch")
        return OpenVinoBackend.from_file(openvino_model(model.path), threads, dtype)
    if kind == "onnx":
        if device != "cpu":
            raise ModelError(
                f"the onnx backend runs on cpu only (got device={device!r}); use backend='torch'"
            )
        if base is not None:
            raise ModelError(f"{model}: an ONNX model has its base built in; --base needs backend torch")
        return OnnxBackend.from_file(model.path / onnx_file, threads)
    if not model.has_torch_weights:
        hint = f" It holds {ONNX_FILE}: use backend='onnx'." if model.has_onnx else ""
        if model.has_openvino:
            hint += f" It holds an OpenVINO IR ({OPENVINO_DIR}/): use backend='openvino'."
        raise ModelError(f"{model}: no PyTorch weights ({', '.join(TORCH_WEIGHT_PATTERNS)}).{hint}")
    return TorchBackend.from_pretrained(model, device, threads, base=base, dtype=dtype, compile=compile)
