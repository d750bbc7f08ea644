"""The defaults table: every default that more than one place uses, with the words that describe it.

Each entry is a :class:`Default`: CLI options, settings fields (``ServeSettings``, presets) and library
signatures take its ``value``, and their help its ``help``; a help text that names a default builds it
from the value (``loraner serve`` does so for each of its options), so the number a user reads is the
number that runs. A default with one owner stays with it: a preset's training fields in ``settings.py``,
the service's limits in ``ServeSettings``, the operators in ``DeidConfig``.

    from loraner import defaults
    batch_size: int = defaults.BATCH_SIZE.value
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Default(Generic[T]):
    """A default value and what it is, in lower case (the command line capitalises it)."""

    value: T
    help: str


# The window every model is trained and served with unless its preset or loraner.json says otherwise.
MAX_LENGTH: Final = Default(256, "window size in tokens, special tokens included")
STRIDE: Final = Default(32, "tokens shared by consecutive windows")
WORD_SPLIT: Final = Default(None, "what a word is (default: as the model was trained, in loraner.json)")

# How the engine runs a model.
BACKEND: Final = Default("auto", "runtime for the model (auto: the fastest the model offers on this CPU)")
DEVICE: Final = Default("cpu", "torch device")
# The fastest weights this CPU runs well (bf16 agrees with fp32 on >= 99% of the entities of trained
# models: bench/README.md).
DTYPE: Final = Default(
    "auto", "torch weights: fp32, bf16, or auto (bf16 where the CPU has native bf16: AMX or AVX512-BF16)"
)
COMPILE: Final = Default(
    False,
    "torch: compile the model (torch.compile, inductor, weights frozen) on its first call, once (about a "
    "minute; needs a C++ compiler); then bf16 answers faster, above all one text at a time: for servers",
)
THREADS: Final = Default(None, "intra-op threads of the runtime (default: all cores)")
BATCH_SIZE: Final = Default(16, "windows per forward pass")
# One 512-token window, or about 16 sentences of 32 tokens. Bounds the activation memory of one call
# (int8 RoBERTa-base: about 50 MB instead of 370 MB for a 3,000-token note in one batch of 7 windows),
# which keeps a served int8 model under 450 MB; see bench/README.md.
MAX_BATCH_TOKENS: Final = Default(
    512, "padded tokens per forward pass: bounds the memory one long text takes"
)
AGGREGATION: Final = Default("first", "how a word's label is chosen")
O_THRESHOLD: Final = Default(None, "an entity wherever P(O) is below this (its best other label wins)")
MAX_LOADED_ADAPTERS: Final = Default(16, "adapters kept loaded; the least recently used goes")
# The multi-adapter base's linear layers in int8 (LoRA, heads and the rest fp32): see
# loraner.inference.int8 and the adapters workload in bench/README.md for what auto picks and why.
BASE_QUANTIZATION: Final = Default(
    "none",
    "multi-adapter base: none, int8 (its linear layers int8, the adapters fp32), or auto (int8 on CPUs "
    "where it was measured faster than the fp32/bf16 base)",
)

# Where `loraner serve` (and `loraner demo`) listen.
HOST: Final = Default("127.0.0.1", "bind address")
PORT: Final = Default(8000, "port")

# `loraner export onnx`: the graph and its checks.
OPSET: Final = Default(17, "ONNX opset of the exported graph")
ATOL: Final = Default(1e-3, "max |logit diff| allowed for fp32")
INT8_FLOOR: Final = Default(0.9, "min entity agreement of int8 with fp32")
# `loraner export openvino --quantize int8`: NNCF's static int8 and the check of its F1 where gold exists.
CALIBRATION_SIZE: Final = Default(300, "calibration texts for static int8 (the first N of the file or split)")
INT8_MAX_F1_DROP: Final = Default(
    0.5, "max entity F1 drop of int8 vs fp32, in points, where the calibration texts have gold entities"
)

# `loraner data synth` and the `synth` data format.
SYNTH_COUNTS: Final[Default[Mapping[str, int]]] = Default(
    MappingProxyType({"train": 600, "validation": 100, "test": 150}), "synthetic notes per split"
)
SYNTH_LOCALES: Final = Default(("nb_NO", "en_US"), "Faker locales of the notes (nb_NO, en_US, ...)")

# The quickstart's synthetic test F1 that `make demo` (and the bench's generalization check) requires.
DEMO_MIN_F1: Final = Default(0.95, "fail if the quickstart test F1 is below this")
