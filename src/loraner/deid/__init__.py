"""Clinical de-identification: PHI spans (from any source) in, safe text out.

Imports only the standard library, pydantic, pyyaml and (lazily, for ``pseudonymize``) faker, so it can
run next to any detector. Entry points: :func:`deidentify`, :func:`deidentify_batch`,
:func:`load_deid_config`, :func:`recognize`, :func:`fuse_spans`, :class:`DeidEvaluator`.
"""

from loraner.deid.config import (
    DeidConfig,
    RecognizerConfig,
    load_deid_config,
    resolve_secret,
    validate_deid_config,
)
from loraner.deid.engine import DeidResult, ReplacedSpan, deidentify, deidentify_batch
from loraner.deid.fnr import valid_fnr
from loraner.deid.metrics import DeidEvaluator, evaluate_document
from loraner.deid.recognizers import fuse_spans, recognize

__all__ = [
    "DeidConfig",
    "DeidEvaluator",
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
]
