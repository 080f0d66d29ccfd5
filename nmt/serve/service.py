"""The translation service behind the HTTP API: models by language pair, limits, batching,
texts into sentences and back. No HTTP here: ``app.py`` maps requests onto these methods and
:class:`RequestError` onto responses.

Each model (a :class:`~nmt.translator.Translator`, torch or CTranslate2) gets a
:class:`~nmt.serve.batcher.DynamicBatcher`; a request's sentences go to it as one job, and
concurrent requests share search calls.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmt.config import ConfigError, DecodingSettings
from nmt.data.normalize import is_chinese
from nmt.errors import NmtError
from nmt.serve import languages
from nmt.serve.batcher import DynamicBatcher, QueueFull
from nmt.serve.metrics import Metrics
from nmt.serve.text import Template, escape_html, html_template, text_template
from nmt.translator import Translation, Translator

MAX_BEAM = 16  # the widest beam (and n-best list) a request may ask for


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask, and how long it may wait (``nmt serve`` options of the same
    names)."""

    max_chars: int = 5000  # per request, all texts together -> 413
    max_sentence_chars: int = 1000  # per sentence -> 413
    max_queue: int = 1024  # sentences waiting for a batch, all requests -> 429 when full
    timeout: float = 30.0  # seconds from arrival to answer -> 503
    batch_wait_ms: float = 5.0  # how long a request may wait for others to share its batch

    def __post_init__(self) -> None:
        for name in ("max_chars", "max_sentence_chars", "max_queue", "timeout"):
            if not getattr(self, name) > 0:
                raise NmtError(f"{name}: expected a positive number, got {getattr(self, name)}")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise NmtError(f"batch_wait_ms: expected 0 to 1000, got {self.batch_wait_ms}")

    @property
    def max_body_bytes(self) -> int:
        """A request body's limit: the characters percent-encoded (9 bytes for a Chinese
        one), plus room for the other fields."""
        return 9 * self.max_chars + 16384


class RequestError(Exception):
    """A request the service refuses: HTTP status, a message for the client, headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Route:
    """One model and its queue."""

    source: str
    target: str
    translator: Translator
    settings: DecodingSettings  # the server's defaults for this model
    batcher: DynamicBatcher

    def describe(self) -> dict[str, Any]:
        t = self.translator
        return {
            "source": self.source,
            "target": self.target,
            "model": t.config.model.type,
            "engine": t.engine,
            "device": t.device,
            "checkpoint": None if t.checkpoint is None else str(t.checkpoint),
            "step": t.step,
            "beam_size": self.settings.beam_size,
            "max_batch": self.settings.batch_size,
        }


@dataclass
class TextResult:
    """One translated text of a LibreTranslate request."""

    text: str
    alternatives: list[str]
    detected: tuple[str, float] | None = None  # with source=auto: (language, confidence %)


class TranslationService:
    def __init__(
        self,
        models: Sequence[tuple[Translator, DecodingSettings]],
        limits: ServeLimits,
        api_keys: frozenset[str] | None = None,
    ) -> None:
        """``models``: each translator with its default settings (``batch_size``: the most
        sentences per search call); ``api_keys``: None for an open server."""
        self.limits = limits
        self.api_keys = api_keys
        self.metrics = Metrics()
        pairs = [_pair(translator) for translator, _ in models]
        for pair in pairs:
            if pairs.count(pair) > 1:
                raise NmtError(f"two models translate {pair[0]}->{pair[1]}; give one per pair")
        self.routes: dict[tuple[str, str], Route] = {}
        for pair, (translator, settings) in zip(pairs, models, strict=True):
            batcher = DynamicBatcher(
                translator,
                self.metrics,
                max_batch=settings.batch_size,
                max_queued=limits.max_queue,
                wait=limits.batch_wait_ms / 1000,
                name=f"{pair[0]}-{pair[1]}",
            )
            self.routes[pair] = Route(*pair, translator, settings, batcher)

    def close(self) -> None:
        for route in self.routes.values():
            route.batcher.close()

    # --- what the server offers -------------------------------------------------------------

    def languages(self) -> list[dict[str, Any]]:
        """LibreTranslate's ``/languages``: each source language and its targets."""
        targets: dict[str, list[str]] = {}
        for source, target in self.routes:
            targets.setdefault(source, []).append(target)
        return [
            {"code": code, "name": languages.name(code), "targets": codes}
            for code, codes in targets.items()
        ]

    def pairs(self) -> str:
        return ", ".join(f"{source}->{target}" for source, target in self.routes)

    def check_api_key(self, key: str | None) -> None:
        if self.api_keys is None:
            return
        # compare_digest with every key: the time taken does not tell which prefix matched.
        if key and sum(hmac.compare_digest(key, known) for known in self.api_keys):
            return
        self.metrics.reject("api_key")
        raise RequestError(403, "Invalid API key" if key else "Invalid request: missing api_key")

    def route(self, source: str, target: str) -> Route:
        pair = languages.canonical(source), languages.canonical(target)
        if pair not in self.routes:
            raise RequestError(
                400,
                f"no model translates {source}->{target}; this server translates {self.pairs()}",
            )
        return self.routes[pair]

    def detect(self, text: str, target: str | None = None) -> tuple[str, float]:
        """The language of ``text`` among the source languages (those with a model into
        ``target``, and ``target`` itself)."""
        candidates = {source for source, tgt in self.routes if target in (None, tgt)}
        if target is not None:
            candidates.add(target)
        detected = languages.detect(text, sorted(candidates))
        if detected is None:
            raise RequestError(400, "cannot tell the language of the text; give source")
        return detected

    # --- translation --------------------------------------------------------------------------

    async def translate_texts(
        self, texts: list[str], source: str, target: str, html: bool, alternatives: int
    ) -> list[TextResult]:
        """LibreTranslate's ``/translate``: texts of any number of lines and sentences (or
        HTML), each sentence translated; ``source`` may be ``auto``."""
        if html:  # parsing hostile markup can take a while: off the event loop
            templates = await asyncio.to_thread(lambda: [html_template(text) for text in texts])
        else:
            templates = [text_template(text) for text in texts]
        self.check_size(texts, [template.sentences for template in templates])
        target = languages.canonical(target)
        if languages.canonical(source) == "auto":
            detected = [self.detect(text, target) for text in texts]
        else:
            detected = [None] * len(texts)
            self.route(source, target)  # 400 before any work when the pair is unknown
        groups: dict[str, list[int]] = {}
        for index, found in enumerate(detected):
            groups.setdefault(found[0] if found else source, []).append(index)
        results: list[TextResult] = [TextResult(text, []) for text in texts]
        gap = "" if is_chinese(target) else " "
        escape = escape_html if html else str

        async def translate_group(group_source: str, indices: list[int]) -> None:
            if languages.canonical(group_source) == target:  # already in the target language
                return
            route = self.route(group_source, target)
            settings = _with_alternatives(route.settings, alternatives)
            sentences = [s for i in indices for s in templates[i].sentences]
            translations = await self.translate(route, sentences, settings)
            offset = 0
            for i in indices:
                count = len(templates[i].sentences)
                mine = translations[offset : offset + count]
                offset += count
                results[i] = _render(templates[i], mine, alternatives, gap, escape)

        await asyncio.gather(*(translate_group(s, indices) for s, indices in groups.items()))
        for result, found in zip(results, detected, strict=True):
            result.detected = found
        return results

    async def translate_sentences(
        self, sentences: list[str], route: Route, options: dict[str, Any]
    ) -> list[Translation]:
        """Our ``/v1/translate``: each item one sentence; ``options`` are DecodingSettings
        fields (``beam_size``, ``n_best``, ``length_penalty``, ``return_attention``)."""
        self.check_size(sentences, [[sentence] for sentence in sentences])
        try:
            settings = route.settings.updated("request", **options)
        except ConfigError as error:
            raise RequestError(400, f"Invalid request: {error}") from None
        return await self.translate(route, sentences, settings)

    def check_size(self, texts: Sequence[str], sentences: Sequence[Sequence[str]]) -> None:
        limits = self.limits
        total = sum(len(text) for text in texts)
        if total > limits.max_chars:
            self.metrics.reject("too_large")
            raise RequestError(
                413, f"the request has {total} characters; this server takes {limits.max_chars}"
            )
        for index, text_sentences in enumerate(sentences):
            for sentence in text_sentences:
                if len(sentence) > limits.max_sentence_chars:
                    self.metrics.reject("too_large")
                    raise RequestError(
                        413,
                        f"q[{index}] has a sentence of {len(sentence)} characters; this server "
                        f"takes {limits.max_sentence_chars} per sentence",
                    )
        count = sum(len(text_sentences) for text_sentences in sentences)
        if count > limits.max_queue:
            self.metrics.reject("too_large")
            raise RequestError(
                413, f"the request has {count} sentences; this server queues {limits.max_queue}"
            )

    async def translate(
        self, route: Route, sentences: list[str], settings: DecodingSettings
    ) -> list[Translation]:
        """Translations through the route's batcher, within the time limit."""
        if not sentences:
            return []
        try:
            future = route.batcher.submit(sentences, settings)
        except QueueFull:
            self.metrics.reject("queue_full")
            raise RequestError(
                429, "the server is busy (its queue is full); try again shortly", _RETRY
            ) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.limits.timeout)
        except asyncio.TimeoutError:
            self.metrics.reject("timeout")
            raise RequestError(
                503,
                f"the translation took longer than {self.limits.timeout:g} s; try again, "
                "or send less text",
                _RETRY,
            ) from None


_RETRY = {"Retry-After": "1"}


def _pair(translator: Translator) -> tuple[str, str]:
    data = translator.config.data
    return languages.canonical(data.src_lang), languages.canonical(data.tgt_lang)


def read_api_keys(path: str | Path) -> frozenset[str]:
    """The keys of an ``--api-keys`` file: one a line; blank lines and ``#`` comments skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise NmtError(f"cannot read the API keys file {path}: {error}") from None
    keys = frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    if not keys:
        raise NmtError(f"{path} holds no API keys (one a line)")
    return keys


def _with_alternatives(settings: DecodingSettings, alternatives: int) -> DecodingSettings:
    """``settings`` giving enough candidates for ``alternatives`` other texts: twice as
    many, as candidates that differ only in their subwords give one text (the beam widened
    if needed)."""
    if alternatives == 0:
        return settings
    n_best = min(2 * alternatives + 1, MAX_BEAM)
    return settings.updated("request", n_best=n_best)


def _render(
    template: Template,
    translations: list[Translation],
    alternatives: int,
    gap: str,
    escape: Any,
) -> TextResult:
    """The text with its sentences translated, and up to ``alternatives`` other distinct
    versions (version k takes each sentence's k-th candidate, or its best if it has fewer)."""

    def version(k: int) -> str:
        texts = [t.candidates[k].text if len(t.candidates) > k else t.text for t in translations]
        return template.render(texts, gap, escape)

    best = version(0)
    others: list[str] = []
    for k in range(1, max((len(t.candidates) for t in translations), default=1)):
        text = version(k)
        if text != best and text not in others:
            others.append(text)
    return TextResult(best, others[:alternatives])
