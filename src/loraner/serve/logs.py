"""Structured (one JSON object per line) logs. Request text never reaches a log: callers pass lengths
and counts as ``extra`` fields, and error logs carry the exception type and frames, not its message
(an exception message may quote the input)."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
import traceback
from typing import Any

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_DROPPED = {"color_message"}  # uvicorn's ANSI-coloured duplicate of msg


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _DROPPED and not key.startswith("_"):
                payload[key] = value
        return json.dumps(payload, ensure_ascii=False, default=str)


def configure_logging(level: str = "info", json_lines: bool = True) -> None:
    """Root handler for the service process (uvicorn's own loggers propagate here)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.captureWarnings(True)  # library warnings (PEFT, Transformers) as log records, not plain text
    if importlib.util.find_spec("transformers") is not None:  # the torch image; the ONNX one has none
        # Transformers prints through a handler of its own and draws progress bars on stderr.
        from transformers.utils import logging as hf_logging

        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()
        hf_logging.disable_progress_bar()


def safe_traceback(exc: BaseException) -> str:
    """Frames and exception type only; the message is dropped because it may contain request text."""
    frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    return "".join(frames) + type(exc).__qualname__
