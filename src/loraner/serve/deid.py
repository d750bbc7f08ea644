"""``POST /deidentify`` and ``POST /deidentify/batch``: the model's spans (plus pattern recognisers, if the
config enables them) rewritten by the configured operators.

Mounted by ``create_app`` unless ``LORANER_DEID=false``. The config comes from ``LORANER_DEID_CONFIG``;
without one every type is replaced by ``[TYPE]`` (no Faker needed, so the slim image can serve it). The
secret for ``hash``/keyed pseudonyms is read from the config's ``secret_env`` and checked at start-up.
Validation, limits and logging are the same as ``/predict``: only lengths and counts are logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from prometheus_client import Counter

from loraner.deid import DeidConfig, DeidOutput, load_deid_config, resolve_secret
from loraner.deid.pipeline import deidentify_entities
from loraner.serve.errors import ERRORS
from loraner.serve.metrics import Metrics
from loraner.serve.routes import admit_text, admit_texts, get_service
from loraner.serve.schemas import (
    DeidentifiedOut,
    DeidentifyBatchRequest,
    DeidentifyBatchResponse,
    DeidentifyRequest,
    DeidentifyResponse,
    ReplacedOut,
    entities_out,
)
from loraner.serve.service import Service, Work
from loraner.serve.settings import ServeSettings

FEATURE = "deidentify"

# --------------------------------------------------------------------------- runtime


def load_service_config(settings: ServeSettings) -> DeidConfig:
    """The deid config for the service; fails at start-up (not on the first request) when it is invalid
    or its secret is missing."""
    config = load_deid_config(settings.deid_config) if settings.deid_config else DeidConfig()
    resolve_secret(config)
    return config


class DeidRuntime:
    """Config and replacement counter; the model runs with the config's ``o_threshold``."""

    def __init__(self, config: DeidConfig, metrics: Metrics) -> None:
        self.config = config
        self.replacements = Counter(
            "loraner_deid_replacements_total",
            "Spans replaced by /deidentify",
            ["type", "operator"],
            registry=metrics.registry,
        )

    async def run(
        self,
        service: Service,
        texts: list[str],
        keys: Sequence[str | None] | None,
        work: Work | None = None,
        adapters: Sequence[str | None] | None = None,
    ) -> list[DeidOutput]:
        entities = await service.run_batch(
            texts, o_threshold=self.config.o_threshold, work=work, adapters=adapters
        )
        # Operators (Faker, regexes) are CPU work too: keep them off the event loop.
        work = partial(deidentify_entities, texts, entities, self.config, keys)
        outputs = await anyio.to_thread.run_sync(work)
        for output in outputs:
            for item in output.result.items:
                self.replacements.labels(item.type, item.operator).inc()
        return outputs


def _fields(output: DeidOutput) -> dict[str, Any]:
    items = [ReplacedOut(**item.to_dict()) for item in output.result.items]  # type: ignore[arg-type]
    entities = entities_out(output.entities)
    return {"text": output.result.text, "items": items, "entities": entities, "count": len(items)}


# --------------------------------------------------------------------------- routes


def deid_router(settings: ServeSettings, metrics: Metrics) -> APIRouter:
    """The routes, bound to the config loaded (and checked) now."""
    runtime = DeidRuntime(load_service_config(settings), metrics)
    router = APIRouter(tags=["deidentify"])

    @router.post(
        "/deidentify",
        response_model=DeidentifyResponse,
        response_model_exclude_none=True,
        responses=ERRORS,
        summary="De-identify one text",
    )
    async def deidentify(
        body: DeidentifyRequest, request: Request, service: Service = Depends(get_service)
    ) -> DeidentifyResponse:
        work = admit_text(request, service, body.text)
        adapters = service.check_adapters([body.adapter])
        [output] = await runtime.run(service, [body.text], [body.document_key], work, adapters)
        request.state.entities = len(output.result.items)
        return DeidentifyResponse(**_fields(output), model=service.model_name)

    @router.post(
        "/deidentify/batch",
        response_model=DeidentifyBatchResponse,
        response_model_exclude_none=True,
        responses=ERRORS,
        summary="De-identify several texts (pseudonyms consistent across them), answered in order",
    )
    async def deidentify_batch(
        body: DeidentifyBatchRequest, request: Request, service: Service = Depends(get_service)
    ) -> DeidentifyBatchResponse:
        work = admit_texts(request, service, body.texts)
        adapters = service.check_adapters(body.adapter_per_text())
        outputs = await runtime.run(service, list(body.texts), body.document_keys, work, adapters)
        request.state.entities = sum(len(o.result.items) for o in outputs)
        results = [DeidentifiedOut(**_fields(o)) for o in outputs]
        return DeidentifyBatchResponse(results=results, count=len(results), model=service.model_name)

    return router


__all__ = ["FEATURE", "DeidRuntime", "deid_router", "load_service_config"]
