"""``POST /deidentify`` and ``POST /deidentify/batch``: the model's spans (plus pattern recognisers, if the
config enables them) rewritten by the configured operators.

Served unless ``LORANER_DEID=false``. The config comes from ``LORANER_DEID_CONFIG``; without one every
type is replaced by ``[TYPE]`` (no Faker needed, so the slim image can serve it). The secret for
``hash``/keyed pseudonyms is read from the config's ``secret_env`` and checked at start-up. Validation,
limits and logging are ``/predict``'s (``routes.TextEndpoints``): only lengths and counts are logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter
from prometheus_client import Counter

from loraner.deid import DeidConfig, DeidOutput, load_deid_config, resolve_secret
from loraner.deid.pipeline import deidentify_entities
from loraner.serve.deps import Admitted
from loraner.serve.metrics import Metrics
from loraner.serve.routes import Endpoint, TextEndpoints
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

    async def run_one(self, service: Service, job: Admitted[DeidentifyRequest]) -> DeidOutput:
        [output] = await self.run(service, job.texts, [job.body.document_key], job.work, job.adapters)
        return output

    async def run_batch(self, service: Service, job: Admitted[DeidentifyBatchRequest]) -> list[DeidOutput]:
        return await self.run(service, job.texts, job.body.document_keys, job.work, job.adapters)


def _fields(output: DeidOutput) -> dict[str, Any]:
    items = [ReplacedOut(**item.to_dict()) for item in output.result.items]  # type: ignore[arg-type]
    entities = entities_out(output.entities)
    return {"text": output.result.text, "items": items, "entities": entities, "count": len(items)}


def deid_router(service: Service) -> APIRouter:
    """The routes, bound to the config loaded (and checked) now."""
    runtime = DeidRuntime(load_service_config(service.settings), service.metrics)
    return TextEndpoints(
        name=FEATURE,
        one=Endpoint(DeidentifyRequest, DeidentifyResponse, "De-identify one text"),
        batch=Endpoint(
            DeidentifyBatchRequest,
            DeidentifyBatchResponse,
            "De-identify several texts (pseudonyms consistent across them), answered in order",
        ),
        item=DeidentifiedOut,
        run_one=runtime.run_one,
        run_batch=runtime.run_batch,
        fields=_fields,
        exclude_none=True,
    ).router()


__all__ = ["FEATURE", "DeidRuntime", "deid_router", "load_service_config"]
