"""Micro-batching: the rows of concurrent requests go through the model in one pass.

Requests wait in a queue; the batching task takes the oldest and whatever else arrives within `max_wait_s`, up
to `max_batch` rows (a larger request runs alone), joins their encoded rows and runs the model on its own thread, so
the event loop keeps accepting requests meanwhile. Only requests asking for the same generation options share a
pass. A request that gave up waiting (timed out) is dropped from the queue unseen.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from plait.data.dataset import EncodedSplit, join_stacks


@dataclass
class Pending:
    encoded: EncodedSplit
    options: tuple  # (key, value) pairs of generation options
    future: asyncio.Future


def joined(splits: list[EncodedSplit]) -> EncodedSplit:
    """Several requests' encoded rows as one split, in order (each field zero-padded to the longest, as training
    pads the cells of one batch)."""
    names = splits[0].inputs
    return EncodedSplit(name="request", rows=list(range(sum(len(s) for s in splits))), targets={},
                        inputs={name: join_stacks([split.inputs[name] for split in splits]) for name in names})


class MicroBatcher:
    def __init__(self, predict: Callable[[EncodedSplit, dict], pd.DataFrame], max_batch: int, max_wait_s: float,
                 on_batch: Callable[[int], None] = lambda rows: None):
        self.predict_rows, self.max_batch, self.max_wait_s, self.on_batch = predict, max_batch, max_wait_s, on_batch
        self.queue: deque[Pending] = deque()
        self.arrived = asyncio.Event()
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="plait-model")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.serve_batches())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.model_thread.shutdown(wait=True)

    async def predict(self, encoded: EncodedSplit, options: dict | None = None) -> pd.DataFrame:
        """This request's predictions (`row` from 0), once its batch has run."""
        future = asyncio.get_running_loop().create_future()
        self.queue.append(Pending(encoded, tuple(sorted((options or {}).items())), future))
        self.arrived.set()
        return await future

    async def serve_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.arrived.wait()
            self.arrived.clear()
            self.drop_abandoned()
            if not self.queue:
                continue
            options = self.queue[0].options
            deadline = loop.time() + self.max_wait_s
            while self.waiting_rows(options) < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    await asyncio.wait_for(self.arrived.wait(), left)
                except TimeoutError:
                    break
                self.arrived.clear()
            batch = self.take(options)
            if self.queue:
                self.arrived.set()  # those left over start the next batch at once
            await self.run(batch, dict(options))

    def drop_abandoned(self) -> None:
        self.queue = deque(pending for pending in self.queue if not pending.future.done())

    def waiting_rows(self, options: tuple) -> int:
        return sum(len(p.encoded) for p in self.queue if p.options == options and not p.future.done())

    def take(self, options: tuple) -> list[Pending]:
        """The oldest request, and after it those with the same options while the batch stays within max_batch."""
        self.drop_abandoned()
        batch, rows, rest = [], 0, deque()
        for pending in self.queue:
            fits = not batch or rows + len(pending.encoded) <= self.max_batch
            if pending.options == options and fits:
                batch.append(pending)
                rows += len(pending.encoded)
            else:
                rest.append(pending)
        self.queue = rest
        return batch

    async def run(self, batch: list[Pending], options: dict) -> None:
        self.on_batch(sum(len(p.encoded) for p in batch))
        try:
            frame = await asyncio.get_running_loop().run_in_executor(
                self.model_thread, lambda: self.predict_rows(joined([p.encoded for p in batch]), options))
        except Exception as error:  # the model failed on this batch: each of its requests hears why
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        start = 0
        for pending in batch:
            rows = frame.iloc[start:start + len(pending.encoded)].reset_index(drop=True)
            start += len(pending.encoded)
            if not pending.future.done():
                pending.future.set_result(rows.assign(row=range(len(rows))))
