"""The HTTP API (FastAPI on uvicorn): LibreTranslate's endpoints, our own, a web page.

| endpoint | what |
| --- | --- |
| ``POST /translate`` | LibreTranslate: ``q`` (text or list), ``source`` (or ``auto``), ``target``, ``format`` (``text``/``html``), ``alternatives``, ``api_key``; JSON or form |
| ``GET /languages``, ``POST /detect``, ``GET /frontend/settings`` | LibreTranslate's, for its clients |
| ``POST /v1/translate`` | ours: sentences with scores, subwords, n-best lists and attention weights |
| ``GET /health``, ``GET /metrics`` | status and models; counters in Prometheus' format |
| ``GET /`` | the web page (``static/``); ``/docs`` and ``/openapi.json``: the API described |

Every error is JSON ``{"error": message}`` (LibreTranslate's shape) with a 4xx status, or a
bare 500 whose details go to the server log only; nothing a client sends can stop the server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from nmt.serve import languages
from nmt.serve.service import MAX_BEAM, RequestError, TranslationService
from nmt.translator import Translation

STATIC = Path(__file__).resolve().parent / "static"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
log = logging.getLogger("nmt.serve")


class SafeJSONResponse(JSONResponse):
    """JSON as UTF-8; a lone surrogate (possible in text echoed back) becomes '?'."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", "replace")


# --- request and response bodies (the OpenAPI description at /docs) ---------------------------


class LibreTranslateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    q: str | list[str] = Field(description="the text, or a list of texts")
    source: str = Field(description="language code (e.g. zh, en), or 'auto'")
    target: str = Field(description="language code")
    format: Literal["text", "html"] = Field("text", description="html: tags are kept")
    alternatives: int = Field(0, ge=0, le=MAX_BEAM - 1, description="other translations")
    api_key: str | None = Field(None, description="needed when the server has API keys")


class LibreTranslateResponse(BaseModel):
    translatedText: str | list[str]  # noqa: N815 (LibreTranslate's field names)
    alternatives: list[str] | list[list[str]] | None = None
    detectedLanguage: dict[str, Any] | list[dict[str, Any]] | None = None  # noqa: N815


class DetectRequest(BaseModel):
    q: str
    api_key: str | None = None


class TranslateRequest(BaseModel):
    """Our endpoint: each item of ``q`` is one sentence."""

    model_config = ConfigDict(extra="forbid")

    q: str | list[str] = Field(description="a sentence, or a list of sentences")
    source: str
    target: str
    beam_size: int | None = Field(None, ge=1, le=MAX_BEAM, description="default: the server's")
    n_best: int | None = Field(None, ge=1, le=MAX_BEAM, description="candidates per sentence")
    length_penalty: float | None = Field(None, ge=0, le=10, description="GNMT alpha")
    attention: bool = Field(False, description="return attention weights (heat maps)")
    api_key: str | None = None


class Candidate(BaseModel):
    text: str
    score: float | None  # log_prob / ((5 + length) / 6) ** alpha, what ranks candidates
    log_prob: float | None  # None: -infinity (JSON has no such number)
    tokens: list[str]  # target subwords, without EOS
    attention: list[list[float]] | None = None  # (tokens + EOS) x source_tokens


class SentenceResult(BaseModel):
    source: str
    source_tokens: list[str]  # the subwords the model read, '</s>' last
    truncated: bool  # cut to the model's maximum length
    translations: list[Candidate]  # best first; empty for an empty sentence


class TranslateResponse(BaseModel):
    source: str
    target: str
    engine: str
    results: list[SentenceResult]
    note: str | None = None


class ErrorResponse(BaseModel):
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "bad request: missing or invalid fields, unknown languages, invalid JSON"),
        (403, "invalid or missing API key (servers started with --api-keys)"),
        (413, "too many characters or sentences"),
        (429, "the queue is full: retry after the Retry-After seconds"),
        (503, "the translation took longer than the server's timeout"),
    )
}


# --- the application -------------------------------------------------------------------------


def create_app(service: TranslationService) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="nmt translation server",
        description="Chinese<->English translation: LibreTranslate's API, and our own with "
        "scores and attention weights. See docs/serving.md.",
        version="1",
        default_response_class=SafeJSONResponse,
        lifespan=lifespan,
    )
    app.add_middleware(RequestGuard, service=service)
    _add_error_handlers(app)
    _add_libretranslate_routes(app, service)
    _add_own_routes(app, service)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return SafeJSONResponse({"error": message}, status_code=status, headers=headers)

    async def request_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestError)
        return error(exc.status, exc.message, exc.headers)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, (RequestValidationError, ValidationError))
        return error(400, validation_message(exc.errors()))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail), exc.headers)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, "internal server error")

    app.add_exception_handler(RequestError, request_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)


def validation_message(errors: Any) -> str:
    """One line for the first problem, LibreTranslate's wording for a missing field."""
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    name = location[0] if location else "body"
    if first.get("type") == "missing":
        return f"Invalid request: missing {name} parameter"
    if first.get("type") in ("json_invalid", "model_attributes_type", "dict_type"):
        return "Invalid request: the body must be a JSON object"
    if name == "q":
        return "Invalid request: q must be a string or a list of strings"
    return f"Invalid request: {'.'.join(location) or name}: {first.get('msg', 'invalid')}"


def _texts(q: str | list[str]) -> list[str]:
    """``q`` as a list; a blank string or an empty list is a missing ``q``."""
    texts = [q] if isinstance(q, str) else q
    if not texts or (isinstance(q, str) and not q.strip()):
        raise RequestError(400, "Invalid request: missing q parameter")
    return texts


def _add_libretranslate_routes(app: FastAPI, service: TranslationService) -> None:
    body_doc = {
        "requestBody": {
            "content": {
                media: {"schema": LibreTranslateRequest.model_json_schema()}
                for media in ("application/json", *FORM_TYPES)
            },
            "required": True,
        }
    }

    @app.post(
        "/translate",
        summary="Translate text (LibreTranslate's API)",
        openapi_extra=body_doc,
        responses={200: {"model": LibreTranslateResponse}, **ERRORS},
    )
    async def translate(request: Request) -> JSONResponse:
        fields = LibreTranslateRequest.model_validate(await _request_fields(request))
        service.check_api_key(fields.api_key)
        texts = _texts(fields.q)
        results = await service.translate_texts(
            texts, fields.source, fields.target, fields.format == "html", fields.alternatives
        )
        one = isinstance(fields.q, str)
        body: dict[str, Any] = {
            "translatedText": results[0].text if one else [r.text for r in results]
        }
        if fields.alternatives:
            alternatives = [r.alternatives for r in results]
            body["alternatives"] = alternatives[0] if one else alternatives
        if results[0].detected is not None:
            detected = [
                {"confidence": r.detected[1], "language": r.detected[0]}
                for r in results
                if r.detected
            ]
            body["detectedLanguage"] = detected[0] if one else detected
        return SafeJSONResponse(body)

    @app.get("/languages", summary="Languages and their targets (LibreTranslate's API)")
    async def list_languages() -> list[dict[str, Any]]:
        return service.languages()

    @app.post("/detect", summary="Detect the language (LibreTranslate's API)", responses=ERRORS)
    async def detect(request: Request) -> list[dict[str, Any]]:
        fields = DetectRequest.model_validate(await _request_fields(request))
        service.check_api_key(fields.api_key)
        language, confidence = service.detect(_texts(fields.q)[0])
        return [{"confidence": confidence, "language": language}]

    @app.get("/frontend/settings", summary="Server settings (LibreTranslate's API)")
    async def frontend_settings() -> dict[str, Any]:
        first_source, first_target = next(iter(service.routes))
        return {
            "charLimit": service.limits.max_chars,
            "apiKeys": service.api_keys is not None,
            "keyRequired": service.api_keys is not None,
            "suggestions": False,
            "filesTranslation": False,
            "supportedFilesFormat": [],
            "language": {
                "source": {"code": first_source, "name": languages.name(first_source)},
                "target": {"code": first_target, "name": languages.name(first_target)},
            },
        }


async def _request_fields(request: Request) -> dict[str, Any]:
    """The body's fields: a JSON object, or a form (a repeated field gives a list)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()  # kept by the request: form() parses it from there
    if content_type in FORM_TYPES:
        try:
            form = await request.form()
        except Exception:  # malformed multipart bodies raise a variety of errors
            raise RequestError(400, "Invalid request: malformed form data") from None
        fields: dict[str, Any] = {}
        for key in form:
            values = form.getlist(key)
            fields[key] = values[0] if len(values) == 1 else values
        if "q" not in fields and body.lstrip().startswith(b"{"):
            raise RequestError(
                400,
                "Invalid request: missing q parameter (a JSON body needs the header "
                "Content-Type: application/json)",
            )
        return fields
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
        raise RequestError(400, "Invalid request: the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise RequestError(400, "Invalid request: the body must be a JSON object")
    return data


def _add_own_routes(app: FastAPI, service: TranslationService) -> None:
    @app.post(
        "/v1/translate",
        summary="Translate sentences, with scores, n-best lists and attention weights",
        responses={200: {"model": TranslateResponse}, **ERRORS},
    )
    async def translate_sentences(request: TranslateRequest) -> JSONResponse:
        service.check_api_key(request.api_key)
        sentences = _texts(request.q)
        route = service.route(request.source, request.target)
        options = {
            "beam_size": request.beam_size,
            "n_best": request.n_best,
            "length_penalty": request.length_penalty,
            "return_attention": request.attention,
        }
        translations = await service.translate_sentences(sentences, route, options)
        results = [_sentence_result(s, t) for s, t in zip(sentences, translations, strict=True)]
        body: dict[str, Any] = {
            "source": route.source,
            "target": route.target,
            "engine": route.translator.engine,
            "results": results,
        }
        if request.attention and any(
            c.get("attention") is None for r in results for c in r["translations"]
        ):
            body["note"] = f"the {route.translator.engine} engine returns no attention weights"
        return SafeJSONResponse(body)

    @app.get("/health", summary="Status and the models served")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "models": [route.describe() for route in service.routes.values()],
            "queued_sentences": service.metrics.queued_sentences,
        }

    @app.get("/metrics", summary="Counters in Prometheus' text format")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _sentence_result(sentence: str, translation: Translation) -> dict[str, Any]:
    """A :class:`SentenceResult` (the fields of ``nmt translate --json --alignments``)."""
    candidates = []
    for candidate in translation.candidates:
        entry: dict[str, Any] = {
            "text": candidate.text,
            "score": _number(candidate.score),
            "log_prob": _number(candidate.log_prob),
            "tokens": candidate.pieces,
        }
        if candidate.attention is not None:
            rows = candidate.attention.tolist()
            entry["attention"] = [[round(w, 4) for w in row] for row in rows]
        candidates.append(entry)
    return {
        "source": sentence,
        "source_tokens": translation.source_pieces,
        "truncated": translation.truncated,
        "translations": candidates,
    }


def _number(value: float) -> float | None:
    """A score for JSON, which has no infinities."""
    return round(value, 4) if math.isfinite(value) else None


# --- ASGI middleware: body size limit and response counting ---------------------------------

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RequestGuard:
    """Refuses a body over the service's byte limit with 413 before anything parses it (the
    declared Content-Length first, then the bytes as they arrive), and counts every response
    by status with its latency."""

    def __init__(self, app: Any, service: TranslationService) -> None:
        self.app = app
        self.metrics = service.metrics
        self.max_body = service.limits.max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def counted_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                await _send_error(counted_send, 413, "the request body is too large")
                return
            await self.app(scope, _replay(body, receive), counted_send)
        finally:
            self.metrics.response(status, time.perf_counter() - start)

    async def _read_body(self, scope: dict[str, Any], receive: Receive) -> bytes | None:
        """The whole body, or None when it is over the limit."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the read body once, then waits for the disconnect."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
