"""A model directory's fast tokenizer, set up to tokenize words as the model saw them in pre-training.

With Transformers installed, its fast tokenizer; without it (the ONNX serving image), ``tokenizer.json``
through the ``tokenizers`` library alone, behind :class:`FastTokenizer`: the part of Transformers'
interface the engine calls, tokenizing exactly as Transformers does (tests/test_tokenizer_parity.py).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from loraner.errors import ModelError
from loraner.modeldir.files import (
    SPECIAL_TOKENS_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    read_json,
    reason,
)
from loraner.modeldir.meta import model_type
from loraner.modeldir.sources import local_model_source

# Byte-level BPE models saw a space before every word in pre-training, so words must be tokenized with
# that space, also the first one and pre-split words ("add_prefix_space").
PREFIX_SPACE_MODEL_TYPES = frozenset(
    {"roberta", "xlm-roberta", "longformer", "bart", "gpt2", "deberta", "camembert", "luke"}
)


def tokenizer_class(model_dir: Path) -> Any:
    """The class ``tokenizer_config.json`` names, else ``AutoTokenizer``.

    ``AutoTokenizer`` imports Transformers' model-config code, which imports torch whenever it is
    installed: about 225 MB more RSS and 2 s more start-up for an ONNX service that never uses it.
    """
    import transformers  # heavy: only when a tokenizer is actually loaded

    name = read_json(model_dir / TOKENIZER_CONFIG_FILE).get("tokenizer_class")
    found = getattr(transformers, name, None) if isinstance(name, str) else None
    return found if found is not None and hasattr(found, "from_pretrained") else transformers.AutoTokenizer


def load_tokenizer(name_or_path: str | Path, kind: str | None = None) -> Any:
    """The fast tokenizer of a model directory, a hub id or ``pkg:MODULE``. ``kind``: the model type,
    when the caller knows it (else ``config.json`` says)."""
    local = local_model_source(name_or_path)
    return tokenizer_of_dir(local, kind or model_type(local))


def tokenizer_of_dir(model_dir: Path, kind: str | None) -> Any:
    """The fast tokenizer of the local ``model_dir`` whose model type is ``kind``."""
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: model directory not found")
    if importlib.util.find_spec("transformers") is None:
        return load_fast_tokenizer(model_dir, kind)
    source = str(model_dir)
    cls = tokenizer_class(model_dir)
    kwargs = {"add_prefix_space": True} if kind in PREFIX_SPACE_MODEL_TYPES else {}
    try:
        tokenizer = cls.from_pretrained(source, **kwargs)
    except PermissionError as exc:
        raise ModelError(f"{source}: cannot load the tokenizer ({reason(exc)})") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{source}: cannot load the tokenizer: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{source}: a fast tokenizer ({TOKENIZER_FILE}) is needed for character offsets")
    return tokenizer


def encode_batch(
    tokenizer: Any, inputs: list[str] | list[list[str]], *, is_split_into_words: bool = False
) -> list[Any]:
    """The ``tokenizers`` encodings (``ids``, ``offsets``, ``word_ids``) of texts, or of word lists, without
    special tokens, truncation or padding, from the Rust tokenizer under ``tokenizer`` (Transformers' fast
    tokenizer or :class:`FastTokenizer`): what ``tokenizer(inputs, add_special_tokens=False)`` computes,
    in one parallel ``encode_batch``, without the Python dictionaries Transformers builds around it.

    The Rust tokenizer's truncation, padding and special-token settings are shared state, set here as a
    Transformers call sets them: callers serialise their calls (the predictor holds a lock)."""
    rust = tokenizer.backend_tokenizer
    if rust.truncation is not None:
        rust.no_truncation()
    if rust.padding is not None:
        rust.no_padding()
    split_special = bool(getattr(tokenizer, "split_special_tokens", False))
    if rust.encode_special_tokens != split_special:
        rust.encode_special_tokens = split_special
    return rust.encode_batch(inputs, is_pretokenized=is_split_into_words, add_special_tokens=False)


def load_fast_tokenizer(model_dir: Path, kind: str | None = None) -> FastTokenizer:
    """``tokenizer.json`` of ``model_dir`` with the ``tokenizers`` library alone: how the ONNX service
    tokenizes where Transformers is not installed (the serving image, 126 MB smaller without it).
    ``load_tokenizer`` picks it then; it tokenizes exactly as Transformers' fast tokenizer of the same
    file does (tests/test_tokenizer_parity.py)."""
    model_dir = Path(model_dir)
    path = model_dir / TOKENIZER_FILE
    if not path.is_file():
        raise ModelError(
            f"{model_dir}: no {TOKENIZER_FILE}; without Transformers installed (as in the ONNX image) the "
            "tokenizer must be a fast tokenizer's tokenizer.json, as `loraner export onnx` writes it"
        )
    from tokenizers import Tokenizer  # a dependency of the serve path; Rust, small

    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if kind in PREFIX_SPACE_MODEL_TYPES:
            _add_prefix_space(state)
        tokenizer = Tokenizer.from_str(json.dumps(state))
    except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot parse
        raise ModelError(f"{path}: cannot load the tokenizer: {reason(exc)}") from exc
    config = read_json(model_dir / TOKENIZER_CONFIG_FILE)
    specials = read_json(model_dir / SPECIAL_TOKENS_FILE)
    return FastTokenizer(tokenizer, config.get("pad_token") or specials.get("pad_token"), config)


def _add_prefix_space(state: dict[str, Any]) -> None:
    """What Transformers does to a byte-level BPE tokenizer loaded with ``add_prefix_space=True``."""
    for key in ("pre_tokenizer", "post_processor"):
        part = state.get(key) or {}
        for step in [part, *part.get("pretokenizers", []), *part.get("processors", [])]:
            if step.get("type") in ("ByteLevel", "RobertaProcessing"):
                step["add_prefix_space"] = True


class FastTokenizer:
    """The part of a Transformers fast tokenizer the engine calls (``__call__`` for texts or pre-split
    words with offsets and word ids, ``pad_token_id``, ``model_max_length``, ``len``), over the same Rust
    tokenizer. Truncation and padding recorded in the file are off, as in a Transformers call without
    them: windows handle length."""

    is_fast = True

    def __init__(self, tokenizer: Any, pad_token: Any, config: dict[str, Any]) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.backend_tokenizer = tokenizer
        if isinstance(pad_token, dict):  # {"content": "<pad>", ...} in some files
            pad_token = pad_token.get("content")
        self.pad_token_id = tokenizer.token_to_id(pad_token) if isinstance(pad_token, str) else None
        limit = config.get("model_max_length")
        self.model_max_length = int(limit) if isinstance(limit, (int, float)) else None

    def __len__(self) -> int:
        return int(self.backend_tokenizer.get_vocab_size(with_added_tokens=True))

    def __call__(
        self,
        text: str | list[str] | list[list[str]],
        *,
        add_special_tokens: bool = True,
        is_split_into_words: bool = False,
        return_offsets_mapping: bool = False,
        return_attention_mask: bool = True,
        verbose: bool = True,
    ) -> FastEncoding:
        """One text, a list of texts, or (``is_split_into_words``) a list of word lists. Offsets and
        word ids are always there; the other flags are accepted for Transformers' signature."""
        single = isinstance(text, str)
        encodings = self.backend_tokenizer.encode_batch(
            [text] if single else list(text),
            is_pretokenized=is_split_into_words,
            add_special_tokens=add_special_tokens,
        )
        return FastEncoding(encodings, single)


# Transformers' names for the fields of a tokenizers ``Encoding``.
_ENCODING_FIELDS = {"input_ids": "ids", "offset_mapping": "offsets", "attention_mask": "attention_mask"}


class FastEncoding:
    """``enc["input_ids"]``, ``enc["offset_mapping"]``, ``enc.word_ids(i)``, as Transformers returns them."""

    def __init__(self, encodings: list[Any], single: bool) -> None:
        self.encodings = encodings
        self.single = single

    def __getitem__(self, key: str) -> Any:
        values = [getattr(e, _ENCODING_FIELDS[key]) for e in self.encodings]
        return values[0] if self.single else values

    def word_ids(self, index: int = 0) -> list[int | None]:
        return self.encodings[index].word_ids
