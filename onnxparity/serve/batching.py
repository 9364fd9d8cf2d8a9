"""Dynamic batching, as Triton does it: concurrent requests to one model run as one batch.

Requests wait in a queue; when an execution slot is free (``instances`` of them per model, all
sharing one session), the batcher takes every waiting request that fits into ``max_batch_size``
rows, waiting at most ``max_queue_delay`` after the oldest one arrived for more to come. Under
load the queue fills while a batch runs, so batches grow by themselves with no delay set.

A batch runs in a worker thread (ONNX Runtime releases the GIL, so the event loop goes on
parsing requests meanwhile), except a batch that the model's last run on inputs of the same
shapes says will take less than ``inline_below_s``: that one runs on the event loop, because
handing it to a thread and back costs as much CPU as running it.
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from onnxparity.serve.protocol import RequestError
from onnxparity.serve.repository import ServedModel

RETRY_AFTER_S = 1  # what a refused client is told to wait (HTTP Retry-After)


@dataclass
class _Item:
    feeds: dict[str, np.ndarray]
    rows: int
    key: tuple  # requests stack only with others of the same non-batch shapes
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


def _timed_run(model: ServedModel, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
    started = time.perf_counter()
    outputs = model.run(feeds)
    return outputs, time.perf_counter() - started


class Batcher:
    """Combines concurrent requests to one model into batches and runs them (in a thread, unless cheap)."""

    def __init__(self, model: ServedModel, executor: Executor, max_batch_size: int, max_queue_delay_s: float,
                 instances: int = 1, on_batch: Callable[[str, int, float], None] | None = None,
                 inline_below_s: float = 0.0, max_queue: int = 256, timeout_s: float | None = None,
                 stack: bool = True):
        self.model = model
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.stack = stack
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.on_batch = on_batch
        self.inline_below_s = inline_below_s
        self._row_s: dict[tuple, float] = {}  # seconds per row in the last run, by input shapes
        self._items: collections.deque[_Item] = collections.deque()
        self._queued_rows = 0
        self._running_rows = 0  # rows in the batches running now
        self._instances = instances
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(instances)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.model.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for item in self._items:
            if not item.future.done():
                item.future.set_exception(_refused("the server is shutting down"))
        self._items.clear()
        self._queued_rows = 0

    @property
    def queued(self) -> int:
        return len(self._items)

    def expected_wait(self, key: tuple) -> float | None:
        """Seconds a new request would wait behind the rows queued ahead of it and those running (counted
        whole), by the last run's seconds per row on inputs of its shapes (None before any such run)."""
        row_s = self._row_s.get(key)
        return None if row_s is None else (self._queued_rows + self._running_rows) * row_s / self._instances

    def check_room(self) -> None:
        """Refuse (503) when ``max_queue`` requests already wait: cheap, so a server can say so before it
        reads and decodes a request's body."""
        if len(self._items) >= self.max_queue:
            raise _refused(f"model {self.model.name!r} is overloaded: {len(self._items)} requests already wait "
                           f"(--max-queue {self.max_queue})")

    async def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(feeds.values()))) if self.stack else 1
        key = tuple((name, a.shape[1:] if self.stack else a.shape) for name, a in sorted(feeds.items()))
        self.check_room()
        wait = self.expected_wait(key)
        if self.timeout_s is not None and wait is not None and wait > self.timeout_s:
            raise _refused(f"model {self.model.name!r} is overloaded: the request would wait about "
                           f"{wait * 1000:.0f} ms (--request-timeout {self.timeout_s * 1000:g} ms)")
        item = _Item(feeds, rows, key, asyncio.get_running_loop().create_future())
        self._items.append(item)
        self._queued_rows += rows
        self._wake.set()
        try:
            return await item.future
        except asyncio.CancelledError:  # the caller went away: its place in the queue is free at once
            self._remove(item)
            raise

    def _remove(self, item: _Item) -> None:
        try:
            self._items.remove(item)
        except ValueError:
            return  # already taken into a batch
        self._queued_rows -= item.rows

    def _rows_ready(self, key: tuple) -> int:
        return sum(i.rows for i in self._items if i.key == key)

    async def _loop(self) -> None:
        while True:
            await self._slots.acquire()
            while not self._items:
                self._wake.clear()
                await self._wake.wait()
            first = self._items[0]
            if self.max_queue_delay_s > 0:
                deadline = first.arrived + self.max_queue_delay_s
                while self._rows_ready(first.key) < self.max_batch_size:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    except asyncio.TimeoutError:
                        break
            batch, rows, keep = [], 0, collections.deque()
            late = None if self.timeout_s is None else time.perf_counter() - self.timeout_s
            while self._items and rows < self.max_batch_size:  # a full batch leaves the rest queued
                item = self._items.popleft()
                self._queued_rows -= item.rows
                if item.future.done():  # the client went away
                    continue
                if late is not None and item.arrived < late:
                    item.future.set_exception(_refused(
                        f"model {self.model.name!r} is overloaded: the request waited longer than "
                        f"--request-timeout ({self.timeout_s * 1000:g} ms)"))
                    continue
                if item.key == first.key and (rows + item.rows <= self.max_batch_size or not batch):
                    batch.append(item)
                    rows += item.rows
                else:
                    keep.append(item)
                    self._queued_rows += item.rows
            self._items.extendleft(reversed(keep))
            if not batch:
                self._slots.release()
                continue
            asyncio.get_running_loop().create_task(self._run(batch, rows))

    async def _run(self, batch: list[_Item], rows: int) -> None:
        self._running_rows += rows
        try:
            names = list(batch[0].feeds)
            if len(batch) == 1:
                feeds = batch[0].feeds
            else:
                feeds = {n: np.concatenate([i.feeds[n] for i in batch]) for n in names}
            try:
                row_s = self._row_s.get(batch[0].key)
                if row_s is not None and row_s * rows < self.inline_below_s:
                    outputs, seconds = _timed_run(self.model, feeds)
                else:
                    outputs, seconds = await asyncio.get_running_loop().run_in_executor(
                        self.executor, _timed_run, self.model, feeds)
            except Exception as exc:  # noqa: BLE001  (handed to each waiting request)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                return
            if len(self._row_s) >= 256:  # clients choose the shapes: a bounded memory of them
                self._row_s.clear()
            self._row_s[batch[0].key] = seconds / rows
            if self.on_batch is not None:
                self.on_batch(self.model.name, rows, seconds)
            start = 0
            for item in batch:
                part = {n: a[start : start + item.rows] for n, a in outputs.items()}
                start += item.rows
                if not item.future.done():
                    item.future.set_result(part)
        finally:
            self._running_rows -= rows
            self._slots.release()


def _refused(message: str) -> RequestError:
    return RequestError(message, 503, retry_after=RETRY_AFTER_S)
