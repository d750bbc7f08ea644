"""Many LoRA adapters on one int8 base graph, run by ONNX Runtime: the multi-adapter server without
PyTorch (the ONNX image), in about the memory of one int8 model.

>>> multi = MultiAdapterPredictor.from_pretrained(                     # doctest: +SKIP
...     "out", "out/adapters")   # from `loraner export onnx-adapters --base B --adapter phi=DIR ... -o out`

The base graph (``lora_base.onnx``) is the base encoder with its linear layers quantized to int8
(dynamic, as ``loraner export onnx``) and, on every linear layer some exported adapter adapts, a LoRA
branch and a bias delta whose weights are graph inputs, as are the classifier head's::

    y = base_int8(x) + (x @ lora_a) @ lora_b + bias_delta        logits = hidden @ head_weight + head_bias

These inputs are initializers listed among the graph's inputs: ONNX Runtime's overridable defaults
(rank 0 and zeros, so a layer an adapter leaves alone adds nothing). Each adapter's own values are an
``adapter.onnx_adapter`` file (ONNX Runtime's adapter format, memory-mapped by ``LoraAdapter``) that a
run activates through ``RunOptions.add_active_adapter``; they stay fp32. Ranks and the label count are
dynamic, so adapters of every shipped preset (``all-linear`` or the five-module list, any rank, with or
without ``bias: lora_only``, any labels) share one graph.

One run serves one adapter: a mixed batch is split into one run per adapter (rows grouped by adapter,
each group cut to its own longest window). Loading, eviction, the fingerprint check and refusal by name
are :class:`~loraner.inference.adapters.AdapterCache`'s, as for the PyTorch pool. Imports onnxruntime
and numpy only: never torch or PEFT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from loraner import defaults
from loraner.errors import ConfigError, ModelError
from loraner.inference.adapters import AdapterCache, AdapterLoadFailed, AdapterRefused
from loraner.inference.backends import onnx_session
from loraner.modeldir import ONNX_ADAPTER_FILE, ONNX_LORA_BASE_FILE, ModelDir, check_base

# The graph's adapter inputs, by the base layer's module name (as in the Transformers model).
LORA_A = "lora_a."  # (in_features, rank)
LORA_B = "lora_b."  # (rank, out_features): PEFT's scaling (alpha / r) folded in
BIAS_DELTA = "bias_delta."  # (out_features,): the adapter's trained bias minus the base's
HEAD_WEIGHT = "head_weight"  # (hidden, labels): the classifier head's weight, transposed
HEAD_BIAS = "head_bias"  # (labels,)
LAYER_INPUTS = (LORA_A, LORA_B, BIAS_DELTA)


def _import_ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError(f"the onnx backend needs onnxruntime ({exc}): pip install 'loraner[onnx]'") from exc
    return ort


def read_adapter_shapes(path: Any) -> dict[str, tuple[int, ...]]:
    """The name and shape of every parameter in an ``.onnx_adapter`` file."""
    params = _import_ort().AdapterFormat.read_adapter(str(path)).get_parameters()
    return {name: tuple(value.shape()) for name, value in params.items()}


class OnnxAdapterPool(AdapterCache):
    """The base graph of ``base`` (a directory from ``loraner export onnx-adapters``) and the adapters
    loaded for it. ``logits(ids, mask, names)``: each row through its adapter, one run per adapter.
    Runs share the session without a lock (ONNX Runtime's ``run`` is thread-safe); loading and
    eviction take the pool's lock."""

    backend_name = "onnx"

    def __init__(
        self,
        base: str,
        *,
        threads: int | None = None,
        max_loaded: int | None = defaults.MAX_LOADED_ADAPTERS.value,
        quantization: str | None = None,
    ) -> None:
        super().__init__(base, max_loaded)
        self.ort = _import_ort()
        self.base = ModelDir.open(base)
        if not self.base.has_onnx_lora_base:
            raise ModelError(
                f"{self.base}: no {ONNX_LORA_BASE_FILE} (make one with `loraner export onnx-adapters`)"
            )
        recorded = self.base.meta.onnx or {}
        self.quantization = str(recorded.get("quantization", "none"))
        if quantization not in (None, "auto", self.quantization):
            raise ConfigError(
                f"{self.base}: the base graph's linear layers are {self.quantization}, not {quantization}; "
                "export the base with the quantization to serve (`loraner export onnx-adapters --quantize`)"
            )
        if not self.base.meta.base_fingerprint:
            raise ModelError(f"{self.base}: its loraner.json records no base fingerprint; export it again")
        self.fingerprint = dict(self.base.meta.base_fingerprint)
        self.session = onnx_session(self.base.path / ONNX_LORA_BASE_FILE, threads, overridable_inputs=True)
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.output_name = self.session.get_outputs()[0].name
        # The adapter inputs and their shapes (ints where fixed, a name where dynamic: ranks, labels).
        self.params = {i.name: tuple(i.shape) for i in self.session.get_overridable_initializers()}
        if HEAD_WEIGHT not in self.params:
            raise ModelError(
                f"{self.base}: {ONNX_LORA_BASE_FILE} has no {HEAD_WEIGHT} input: not a LoRA base"
            )
        self.hidden = int(self.params[HEAD_WEIGHT][0])
        # The linear layers with a LoRA branch: (in_features, out_features).
        self.layers = {
            name.removeprefix(LORA_A): (
                int(shape[0]),
                int(self.params[LORA_B + name.removeprefix(LORA_A)][1]),
            )
            for name, shape in self.params.items()
            if name.startswith(LORA_A)
        }

    def check(self, name: str, adapter: ModelDir) -> list[str]:
        """The base layers ``name`` adapts, read from its ``.onnx_adapter`` (names and shapes), after
        checking that this graph can run it: a branch for each of its layers, matrices that fit them,
        and a head of its labels' size. Raises :class:`AdapterRefused` naming the adapter and why."""
        path = adapter.path / ONNX_ADAPTER_FILE
        if not path.is_file():
            raise AdapterRefused(
                name,
                adapter.path,
                f"it has no {ONNX_ADAPTER_FILE}: the onnx backend serves adapters exported with the base "
                "graph (`loraner export onnx-adapters`; its adapters/NAME folders)",
            )
        try:
            shapes = read_adapter_shapes(path)
        except Exception as exc:  # onnxruntime raises untyped errors for a bad file
            raise AdapterRefused(
                name, adapter.path, f"its {ONNX_ADAPTER_FILE} cannot be read ({exc})"
            ) from exc
        layers: set[str] = set()
        for key in shapes:
            prefix = next((p for p in LAYER_INPUTS if key.startswith(p)), None)
            if prefix is None and key not in (HEAD_WEIGHT, HEAD_BIAS):
                raise AdapterRefused(name, adapter.path, f"{key} is no input of the base graph")
            if prefix is None:
                continue
            layer = key.removeprefix(prefix)
            if layer not in self.layers:
                raise AdapterRefused(
                    name,
                    adapter.path,
                    f"it adapts {layer}, where this base graph has no LoRA branch: export the base graph "
                    "with this adapter among its adapters",
                )
            layers.add(layer)
        for layer in sorted(layers):
            in_features, out_features = self.layers[layer]
            a, b = shapes.get(LORA_A + layer, (in_features, 0)), shapes.get(LORA_B + layer, (0, out_features))
            bias = shapes.get(BIAS_DELTA + layer, (out_features,))
            if a[0] != in_features or b[1] != out_features or a[1] != b[0] or bias != (out_features,):
                raise AdapterRefused(
                    name,
                    adapter.path,
                    f"its LoRA weights of {layer} ({a}, {b}, bias {bias}) do not fit the base layer "
                    f"({in_features} -> {out_features})",
                )
        labels = len(adapter.meta.labels)
        head, head_bias = shapes.get(HEAD_WEIGHT), shapes.get(HEAD_BIAS, (labels,))
        if head is None:
            raise AdapterRefused(name, adapter.path, "it has no classifier head")
        if head != (self.hidden, labels) or head_bias != (labels,):
            raise AdapterRefused(
                name,
                adapter.path,
                f"its head is {head} (bias {head_bias}) but the base's hidden size is {self.hidden} and "
                f"loraner.json lists {labels} labels",
            )
        return sorted(layers)

    def _load(self, name: str, adapter: ModelDir) -> Any:
        check_base(adapter.path, adapter.meta, self.base_name, self.fingerprint or {})
        self.check(name, adapter)
        try:
            lora = self.ort.LoraAdapter()
            lora.Load(str(adapter.path / ONNX_ADAPTER_FILE))  # memory-mapped while the object lives
        except Exception as exc:  # onnxruntime's own errors (memory, a file changed under it)
            raise AdapterLoadFailed(name, adapter.path, str(exc) or type(exc).__name__) from exc
        return lora

    def _forget(self, name: str) -> None:
        """Nothing is shared between adapters here: dropping the loaded objects unloads it."""

    def logits(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, names: Sequence[str]
    ) -> list[np.ndarray]:
        """Per row, the logits of that row's adapter: one run per adapter in ``names``."""
        needed = list(dict.fromkeys(names))
        with self._lock:
            # Another request may have evicted one of these since its predictor was made: load it again.
            for name in needed:
                self.ensure(name, keep=needed)
            runs = {name: self._loaded[name] for name in needed}
            self._trim()  # back under the cap; this pass holds what it needs until it ends
        out: list[np.ndarray] = [np.empty(0)] * len(names)
        for name in needed:
            rows = [i for i, n in enumerate(names) if n == name]
            ids, mask = input_ids, attention_mask
            if len(rows) < len(names):
                ids, mask = input_ids[rows], attention_mask[rows]
                width = max(int(mask.sum(axis=1).max()), 1)  # this group's longest window
                ids, mask = ids[:, :width], mask[:, :width]
            logits = self._run(ids, mask, runs[name])
            for at, row in enumerate(rows):
                out[row] = logits[at]
        return out

    def _run(self, input_ids: np.ndarray, attention_mask: np.ndarray, adapter: Any) -> np.ndarray:
        """One run with ``adapter`` (a loaded ``LoraAdapter``) active: its own ``RunOptions``, so runs
        of several requests never share one."""
        options = self.ort.RunOptions()
        options.add_active_adapter(adapter)
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        feed = {k: v for k, v in feed.items() if k in self.input_names}
        return np.asarray(self.session.run([self.output_name], feed, options)[0], dtype=np.float32)
