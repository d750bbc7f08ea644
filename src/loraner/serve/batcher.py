"""Micro-batching: concurrent single-text requests that arrive within a few milliseconds of each other
share one ``predict_batch`` call, so a burst costs one padded forward pass instead of N.

Correct because ``predict_batch`` is a pure function of each text: a text's entities do not depend
on what else is in its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from loraner.types import Entity

# (texts, adapter names one per text) -> entities per text
RunBatch = Callable[[list[str], list[str | None]], Awaitable[list[list[Entity]]]]


class MicroBatcher:
    def __init__(self, run_batch: RunBatch, max_wait_s: float, max_items: int) -> None:
        self.run_batch = run_batch
        self.max_wait_s = max_wait_s
        self.max_items = max_items
        self._pending: list[tuple[str, str | None, asyncio.Future[list[Entity]]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def submit(self, text: str, adapter: str | None = None) -> list[Entity]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Entity]] = loop.create_future()
        self._pending.append((text, adapter, future))
        if len(self._pending) >= self.max_items:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._pending = self._pending, []
        if items:
            task = asyncio.get_running_loop().create_task(self._run(items))
            self._tasks.add(task)  # keep a reference: the loop only holds weak ones
            task.add_done_callback(self._tasks.discard)

    async def _run(self, items: list[tuple[str, str | None, asyncio.Future[list[Entity]]]]) -> None:
        items = [item for item in items if not item[2].done()]  # clients gone: skip
        if not items:
            return
        try:
            results = await self.run_batch([text for text, _, _ in items], [a for _, a, _ in items])
        except Exception as exc:
            if len(items) == 1:
                if not items[0][2].done():  # the client may have gone away and cancelled it
                    items[0][2].set_exception(exc)
                return
            # One bad text must not fail its neighbours: run each alone, so only its own request fails.
            await asyncio.gather(*(self._run([item]) for item in items))
            return
        for (_, _, future), entities in zip(items, results, strict=True):
            if not future.done():
                future.set_result(entities)

    async def aclose(self) -> None:
        self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
