"""Dynamic batching: requests that arrive together are decoded in one search call.

One worker thread owns a translator (torch or CTranslate2 alike). Requests queue as jobs;
the worker takes the oldest job and, with it, every queued job with the same decoding
settings, up to ``max_batch`` sentences (the first job always goes, however large). When
fewer are waiting, it waits for more until the oldest job has waited ``wait`` seconds: under
load the queue fills while a batch decodes, so the next batch leaves at once; an isolated
request waits at most ``wait``.

The queue is bounded in sentences (``max_queued``): a job that would overflow it is refused
at once (:class:`QueueFull`), so a flood of requests gets fast answers instead of growing
latencies. A job whose future is cancelled (the request timed out) leaves the queue.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from nmt.config import DecodingSettings
from nmt.serve.metrics import Metrics
from nmt.translator import Translator


class QueueFull(Exception):
    """The queue cannot take the job's sentences now."""


@dataclass(eq=False)
class _Job:
    sentences: list[str]
    settings: DecodingSettings
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """A worker thread translating queued jobs in batches (see the module docstring)."""

    def __init__(
        self,
        translator: Translator,
        metrics: Metrics,
        max_batch: int,
        max_queued: int,
        wait: float,
        name: str = "translator",
    ) -> None:
        self.translator = translator
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_queued = max_queued
        self.wait = wait
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # sentences in self._jobs
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"nmt-{name}", daemon=True)
        self._thread.start()

    def submit(self, sentences: list[str], settings: DecodingSettings) -> Future:
        """Queue ``sentences``; the future gets their translations (one per sentence)."""
        job = _Job(list(sentences), settings)
        with self._changed:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if self._queued + len(job.sentences) > self.max_queued:
                raise QueueFull
            self._jobs.append(job)
            self._queued += len(job.sentences)
            self._changed.notify()
        self.metrics.queue_change(len(job.sentences))
        job.future.add_done_callback(lambda _: self._forget(job))
        return job.future

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the queued jobs; wait up to ``timeout`` seconds for the worker."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join(timeout)

    def _forget(self, job: _Job) -> None:
        """A cancelled job leaves the queue (a finished one has left it already)."""
        if not job.future.cancelled():
            return
        with self._changed:
            try:
                self._jobs.remove(job)
            except ValueError:
                return
            self._queued -= len(job.sentences)
            self._changed.notify()
        self.metrics.queue_change(-len(job.sentences))

    def _run(self) -> None:
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            self._decode(jobs)

    def _next_batch(self) -> list[_Job] | None:
        """The jobs of the next search call, removed from the queue; None once closed."""
        with self._changed:
            while True:  # re-examined whenever a job comes or goes
                while not self._jobs:
                    if self._closed:
                        return None
                    self._changed.wait()
                first = self._jobs[0]
                remaining = first.enqueued + self.wait - time.monotonic()
                if self._closed or remaining <= 0 or self._matching(first) >= self.max_batch:
                    break
                self._changed.wait(remaining)
            jobs, sentences = [], 0
            for job in self._jobs:
                if job.settings != first.settings:
                    continue
                if jobs and sentences + len(job.sentences) > self.max_batch:
                    break
                jobs.append(job)
                sentences += len(job.sentences)
            for job in jobs:
                self._jobs.remove(job)
            self._queued -= sentences
        self.metrics.queue_change(-sentences)
        return jobs

    def _matching(self, first: _Job) -> int:
        """Queued sentences that could join ``first``'s batch."""
        return sum(len(job.sentences) for job in self._jobs if job.settings == first.settings)

    def _decode(self, jobs: list[_Job]) -> None:
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        sentences = [sentence for job in jobs for sentence in job.sentences]
        start = time.perf_counter()
        try:
            translations = self.translator.translate(sentences, jobs[0].settings)
        except Exception as error:  # one bad batch must not stop the worker
            for job in jobs:
                job.future.set_exception(error)
            return
        self.metrics.batch(len(jobs), len(sentences), time.perf_counter() - start)
        offset = 0
        for job in jobs:
            job.future.set_result(translations[offset : offset + len(job.sentences)])
            offset += len(job.sentences)
