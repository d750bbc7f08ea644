"""Model runtimes behind one method: ``logits(input_ids, attention_mask) -> (batch, seq, labels)``.

``TorchBackend`` runs a Transformers checkpoint; ``OnnxBackend`` runs ``model.onnx`` with
onnxruntime and never imports torch, so the serving image can leave PyTorch out. Both take their
runtime object as a parameter (a model, an ``InferenceSession``) so tests and callers can inject one,
and so several backends (e.g. one per LoRA adapter) can sit behind one tokenizer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from loraner.errors import ModelError

ONNX_FILE = "model.onnx"
BACKENDS = ("auto", "torch", "onnx")


@runtime_checkable
class Backend(Protocol):
    name: str

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


def default_threads() -> int:
    """Intra-op threads when none are given: the cores this process may run on, set explicitly rather
    than left to each runtime's own guess. (A container CPU quota is invisible here: pass ``threads``.)"""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class TorchBackend:
    name = "torch"

    def __init__(self, model: Any, device: str = "cpu") -> None:
        self.model = model
        self.device = device

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str = "cpu", threads: int | None = None
    ) -> TorchBackend:
        try:
            import torch
            from transformers import AutoModelForTokenClassification
        except ImportError as exc:
            raise ModelError(f"the torch backend needs PyTorch ({exc}); use backend='onnx'") from exc
        if threads:
            # Process-wide in PyTorch: the last predictor created decides.
            torch.set_num_threads(threads)
        try:
            model = AutoModelForTokenClassification.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load a token-classification model from {path}: {exc}") from exc
        return cls(model.eval().to(device), device)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(
                input_ids=torch.from_numpy(input_ids).to(self.device),
                attention_mask=torch.from_numpy(attention_mask).to(self.device),
            ).logits
        return out.float().cpu().numpy()


class OnnxBackend:
    name = "onnx"

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_names = {i.name for i in session.get_inputs()}
        self.output_name = session.get_outputs()[0].name

    @classmethod
    def from_file(cls, path: str | Path, threads: int | None = None) -> OnnxBackend:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(
                f"the onnx backend needs onnxruntime ({exc}): pip install 'loraner[onnx]'"
            ) from exc
        path = Path(path)
        if not path.exists():
            raise ModelError(f"{path}: no ONNX model (create one with `loraner export onnx`)")
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
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"{path}: onnxruntime cannot load it: {exc}") from exc
        release_free_heap()
        return cls(session)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        feed = {k: v for k, v in feed.items() if k in self.input_names}
        return np.asarray(self.session.run([self.output_name], feed)[0], dtype=np.float32)


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


def resolve_backend_name(model_dir: Path, backend: str) -> str:
    if backend not in BACKENDS:
        raise ModelError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    return "onnx" if (model_dir / ONNX_FILE).exists() else "torch"


def load_backend(
    model_dir: Path,
    backend: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    onnx_file: str = ONNX_FILE,
) -> Backend:
    """The runtime for ``model_dir``; ``auto`` picks ONNX when the directory holds ``model.onnx``."""
    kind = resolve_backend_name(model_dir, backend)
    if kind == "onnx":
        if device != "cpu":
            raise ModelError(
                f"the onnx backend runs on cpu only (got device={device!r}); use backend='torch'"
            )
        return OnnxBackend.from_file(model_dir / onnx_file, threads)
    if not any(model_dir.glob("*.safetensors")) and not any(model_dir.glob("*.bin")):
        hint = " It holds model.onnx: use backend='onnx'." if (model_dir / ONNX_FILE).exists() else ""
        raise ModelError(f"{model_dir}: no PyTorch weights (*.safetensors, *.bin).{hint}")
    return TorchBackend.from_pretrained(model_dir, device, threads)
