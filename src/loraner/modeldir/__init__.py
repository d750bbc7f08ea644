"""The model directory: the files a trained model leaves, and the one place that reads and writes them.

=========================  ==========================  ================================================
file                       written by                  what
=========================  ==========================  ================================================
``loraner.json``           train; copied by merge and  :class:`ModelMeta`: labels, window, word split,
                           export                      base model and its fingerprint, data format
``config.json``, weights   train (full), merge         a Transformers model (``id2label``)
``adapter_config.json``,   train (LoRA)                the PEFT adapter with the trained classifier
``adapter_model.*``
``tokenizer.json`` ...     train, merge, export        the fast tokenizer
``model.onnx``,            export onnx                 the ONNX graph and its parity report
``export_report.json``
``lora_base.onnx``,        export onnx-adapters        a base graph whose LoRA branches and head are
``adapters/NAME/``                                     inputs; each adapter's PEFT directory plus
                                                       ``adapter.onnx_adapter`` (ONNX Runtime's format)
``openvino/model.xml``,    export openvino             the OpenVINO IR (fp32 or NNCF static int8) and
``.bin``, ``export_report                              its parity report
.json``
``README.md``              train; carried by merge     the model card (Hugging Face metadata, scores)
=========================  ==========================  ================================================

A run directory (``loraner train -o RUN``) holds ``adapter/`` and ``merged/``. Any Hugging Face
token-classification checkpoint is a model directory too: without ``loraner.json`` its labels come
from ``config.json`` and everything else from the defaults of :class:`ModelMeta`.

One module a section, lowest first: ``files`` (file names, the run layout, readable files), ``meta``
(``loraner.json``), ``fingerprint`` (the base an adapter was trained on), ``hub`` (hub ids, download,
push), ``sources`` (a model name: path, ``pkg:MODULE`` or hub id, to a directory), ``tokenizer`` and
``directory`` (:class:`ModelDir`: a directory resolved once, what the predictor and the backends
receive). Reads JSON only (no torch, no weights), so the ONNX service can use it.
"""

from loraner.modeldir.directory import ModelDir, ModelKind, copy_companions, copy_meta
from loraner.modeldir.files import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_DIR,
    ADAPTER_WEIGHT_FILES,
    CARD_FILE,
    CONFIG_FILE,
    EXPORT_REPORT_FILE,
    HEAD_MODULE,
    MERGED_DIR,
    META_FILE,
    ONNX_ADAPTER_FILE,
    ONNX_ADAPTERS_DIR,
    ONNX_FILE,
    ONNX_LORA_BASE_FILE,
    OPENVINO_DIR,
    OPENVINO_FILES,
    OPENVINO_MODEL_FILE,
    OPENVINO_WEIGHTS_FILE,
    PICKLED_WEIGHTS_PATTERN,
    SAFETENSORS_FILE,
    SAFETENSORS_PATTERN,
    SPECIAL_TOKENS_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    TORCH_WEIGHT_PATTERNS,
    adapter_weights,
    check_readable,
    has_onnx,
    has_onnx_lora_base,
    has_openvino,
    has_torch_weights,
    has_weights,
    is_adapter,
    make_readable,
    model_or_adapter,
    openvino_model,
    read_json,
    resolve_model_dir,
)
from loraner.modeldir.fingerprint import FINGERPRINT_SCHEME, base_fingerprint, check_base
from loraner.modeldir.hub import (
    HUB_MODEL_FILES,
    HUB_PICKLED_WEIGHTS,
    HUB_REPO_ID,
    PUSH_IGNORE,
    REVISION_SEP,
    check_pushable,
    download_model,
    hub_id,
    hub_problem,
    push_model,
)
from loraner.modeldir.meta import (
    MAX_POSITIONS,
    QUANTIZATIONS,
    ModelMeta,
    Quantization,
    labels_from_config,
    model_meta,
    model_type,
    read_meta,
    write_meta,
)
from loraner.modeldir.sources import (
    OFFLINE_MINILM,
    PACKAGE_HUB_IDS,
    PACKAGE_PREFIX,
    local_model_source,
    package_model_dir,
)
from loraner.modeldir.tokenizer import (
    PREFIX_SPACE_MODEL_TYPES,
    FastEncoding,
    FastTokenizer,
    encode_batch,
    load_fast_tokenizer,
    load_tokenizer,
    tokenizer_class,
    tokenizer_of_dir,
)

__all__ = [
    "ADAPTER_CONFIG_FILE",
    "ADAPTER_DIR",
    "ADAPTER_WEIGHT_FILES",
    "CARD_FILE",
    "CONFIG_FILE",
    "EXPORT_REPORT_FILE",
    "FINGERPRINT_SCHEME",
    "HEAD_MODULE",
    "HUB_MODEL_FILES",
    "HUB_PICKLED_WEIGHTS",
    "HUB_REPO_ID",
    "MAX_POSITIONS",
    "MERGED_DIR",
    "META_FILE",
    "OFFLINE_MINILM",
    "ONNX_ADAPTERS_DIR",
    "ONNX_ADAPTER_FILE",
    "ONNX_FILE",
    "ONNX_LORA_BASE_FILE",
    "OPENVINO_DIR",
    "OPENVINO_FILES",
    "OPENVINO_MODEL_FILE",
    "OPENVINO_WEIGHTS_FILE",
    "PACKAGE_HUB_IDS",
    "PACKAGE_PREFIX",
    "PICKLED_WEIGHTS_PATTERN",
    "PREFIX_SPACE_MODEL_TYPES",
    "PUSH_IGNORE",
    "QUANTIZATIONS",
    "REVISION_SEP",
    "SAFETENSORS_FILE",
    "SAFETENSORS_PATTERN",
    "SPECIAL_TOKENS_FILE",
    "TOKENIZER_CONFIG_FILE",
    "TOKENIZER_FILE",
    "TORCH_WEIGHT_PATTERNS",
    "FastEncoding",
    "FastTokenizer",
    "ModelDir",
    "ModelKind",
    "ModelMeta",
    "Quantization",
    "adapter_weights",
    "base_fingerprint",
    "check_base",
    "check_pushable",
    "check_readable",
    "copy_companions",
    "copy_meta",
    "download_model",
    "encode_batch",
    "has_onnx",
    "has_onnx_lora_base",
    "has_openvino",
    "has_torch_weights",
    "has_weights",
    "hub_id",
    "hub_problem",
    "is_adapter",
    "labels_from_config",
    "load_fast_tokenizer",
    "load_tokenizer",
    "local_model_source",
    "make_readable",
    "model_meta",
    "model_or_adapter",
    "model_type",
    "openvino_model",
    "package_model_dir",
    "push_model",
    "read_json",
    "read_meta",
    "resolve_model_dir",
    "tokenizer_class",
    "tokenizer_of_dir",
    "write_meta",
]
