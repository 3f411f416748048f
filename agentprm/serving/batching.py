"""The one thread that owns a model: jobs that arrive within a short window share one forward pass.

Used by the PRM scoring server (agentprm.serving.prm_server): request threads validate and tokenize,
then submit a Job; the worker groups waiting jobs of the same kind (up to max_batch sequences within
window_s of the first) into one runner call, and reruns a failed merged batch job by job so that
only the culprit gets the error.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Job:
    """One request's work for the model thread: `kind` picks the runner, `size` counts sequences."""

    kind: str
    payload: Any
    size: int
    future: Future = dataclasses.field(default_factory=Future)


class BatchWorker:
    """The one thread that owns the model.

    runners[kind](payloads) -> one result per payload; jobs of the same kind that arrive within
    `window_s` of the first waiting one (up to `max_batch` sequences) go to one runner call.

    >>> worker = BatchWorker({"double": lambda xs: [2 * x for x in xs]}, max_batch=8, window_s=0.002)
    >>> worker.start()
    >>> worker.submit(Job("double", 21, size=1)).result()
    42
    >>> worker.stop(); worker.alive
    False
    """

    def __init__(self, runners: dict[str, Callable[[list], list]], max_batch: int, window_s: float):
        self.runners, self.max_batch, self.window_s = runners, max_batch, window_s
        self.queue: queue.Queue[Job | None] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.batches = 0  # runner calls made (the tests and /health read it)

    def start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._loop, name="prm-worker", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def submit(self, job: Job) -> Future:
        if not self.alive:
            raise RuntimeError("the model worker is not running (the server is shutting down)")
        self.queue.put(job)
        return job.future

    def _loop(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            batch, size = [job], job.size
            deadline = time.monotonic() + self.window_s
            while size < self.max_batch:
                remaining = deadline - time.monotonic()
                try:  # what is already waiting, then whatever arrives before the deadline
                    nxt = self.queue.get(timeout=remaining) if remaining > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:  # stop after this batch
                    self.queue.put(None)
                    break
                batch.append(nxt)
                size += nxt.size
            self._run(batch)

    def _run(self, batch: list[Job]) -> None:
        # A request whose client went away was cancelled: skip its work.
        live = [j for j in batch if j.future.set_running_or_notify_cancel()]
        for kind in dict.fromkeys(j.kind for j in live):
            group = [j for j in live if j.kind == kind]
            try:
                self._call(kind, group)
            except Exception as exc:
                if len(group) == 1:
                    log.exception("scoring a %s job failed", kind)
                    group[0].future.set_exception(exc)
                    continue
                for j in group:  # isolate the job that broke the merged batch
                    try:
                        self._call(kind, [j])
                    except Exception as e:
                        log.exception("scoring a %s job failed", kind)
                        j.future.set_exception(e)

    def _call(self, kind: str, group: list[Job]) -> None:
        results = self.runners[kind]([j.payload for j in group])
        self.batches += 1
        for j, r in zip(group, results, strict=True):
            j.future.set_result(r)
