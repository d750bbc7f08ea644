"""Clinical de-identification: PHI spans (from any source) in, safe text out.

Imports only the standard library, pydantic, pyyaml and (lazily, for ``pseudonymize``) faker, so it can
run next to any detector. Entry points: :func:`deidentify`, :func:`deidentify_batch`,
:func:`load_deid_config`, :func:`recognize`, :func:`fuse_spans`, :class:`DeidEvaluator`, and
:class:`DeidPipeline` (any detector's ``predict_batch`` + patterns + operators).
"""

from loraner.deid.config import (
    DeidConfig,
    RecognizerConfig,
    load_deid_config,
    resolve_secret,
    validate_deid_config,
)
from loraner.deid.engine import DeidResult, ReplacedSpan, deidentify, deidentify_batch
from loraner.deid.metrics import DeidEvaluator, evaluate_document
from loraner.deid.pipeline import DeidOutput, DeidPipeline, with_overrides
from loraner.deid.recognizers import fuse_spans, recognize
from loraner.fnr import valid_fnr

__all__ = [
    "DeidConfig",
    "DeidEvaluator",
    "DeidOutput",
    "DeidPipeline",
    "DeidResult",
    "RecognizerConfig",
    "ReplacedSpan",
    "deidentify",
    "deidentify_batch",
    "evaluate_document",
    "fuse_spans",
    "load_deid_config",
    "recognize",
    "resolve_secret",
    "valid_fnr",
    "validate_deid_config",
    "with_overrides",
]
