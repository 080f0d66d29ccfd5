"""Server counters, rendered for ``GET /metrics`` in Prometheus' text format.

Thread-safe: the event loop counts requests and responses, the decoding workers count
batches. Histograms show the dynamic batching at work: ``nmt_batch_requests`` is how many
requests shared one search call, ``nmt_batch_sentences`` how many sentences it decoded.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)  # observations <= each bound (cumulative on render)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1
                break
        self.total += value
        self.count += 1

    def render(self, name: str) -> list[str]:
        lines, cumulative = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound:g}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.total:g}")
        lines.append(f"{name}_count {self.count}")
        return lines


class Metrics:
    """Everything ``/metrics`` shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.responses: Counter[int] = Counter()  # by HTTP status
        self.rejected: Counter[str] = Counter()  # by reason: queue_full, timeout, ...
        self.sentences = 0  # translated
        self.decode_seconds = 0.0
        self.batch_requests = Histogram(BATCH_BUCKETS)
        self.batch_sentences = Histogram(BATCH_BUCKETS)
        self.request_seconds = Histogram(LATENCY_BUCKETS)
        self.queued_sentences = 0  # waiting now, all models

    def response(self, status: int, seconds: float) -> None:
        with self._lock:
            self.responses[status] += 1
            self.request_seconds.observe(seconds)

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def batch(self, requests: int, sentences: int, seconds: float) -> None:
        with self._lock:
            self.batch_requests.observe(requests)
            self.batch_sentences.observe(sentences)
            self.sentences += sentences
            self.decode_seconds += seconds

    def queue_change(self, sentences: int) -> None:
        with self._lock:
            self.queued_sentences += sentences

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP nmt_http_responses_total HTTP responses by status code.",
                "# TYPE nmt_http_responses_total counter",
                *(
                    f'nmt_http_responses_total{{code="{code}"}} {count}'
                    for code, count in sorted(self.responses.items())
                ),
                "# HELP nmt_rejected_total Translation requests refused, by reason.",
                "# TYPE nmt_rejected_total counter",
                *(
                    f'nmt_rejected_total{{reason="{reason}"}} {count}'
                    for reason, count in sorted(self.rejected.items())
                ),
                "# HELP nmt_sentences_total Sentences translated.",
                "# TYPE nmt_sentences_total counter",
                f"nmt_sentences_total {self.sentences}",
                "# HELP nmt_decode_seconds_total Time spent in search calls.",
                "# TYPE nmt_decode_seconds_total counter",
                f"nmt_decode_seconds_total {self.decode_seconds:g}",
                "# HELP nmt_queued_sentences Sentences waiting for a decoding batch.",
                "# TYPE nmt_queued_sentences gauge",
                f"nmt_queued_sentences {self.queued_sentences}",
                "# HELP nmt_batch_requests Requests decoded together in one search call.",
                "# TYPE nmt_batch_requests histogram",
                *self.batch_requests.render("nmt_batch_requests"),
                "# HELP nmt_batch_sentences Sentences decoded together in one search call.",
                "# TYPE nmt_batch_sentences histogram",
                *self.batch_sentences.render("nmt_batch_sentences"),
                "# HELP nmt_request_seconds Time from a request's arrival to its response.",
                "# TYPE nmt_request_seconds histogram",
                *self.request_seconds.render("nmt_request_seconds"),
                "# HELP nmt_uptime_seconds Seconds since the server started.",
                "# TYPE nmt_uptime_seconds gauge",
                f"nmt_uptime_seconds {time.time() - self.started:.1f}",
            ]
        return "\n".join(lines) + "\n"
