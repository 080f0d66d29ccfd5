"""``nmt serve`` through a real uvicorn process: LibreTranslate's API (its Python client
included), our ``/v1/translate``, dynamic batching seen in ``/metrics``, the limits, and
fuzzed bodies that must never get a 500 or stop the server.

Two servers per module: ``server`` (zh->en and en->zh, open, a 50 ms batching window so that
concurrent requests visibly share batches) and ``strict`` (API keys and tight limits, and a
batching window longer than its timeout, so that queue-full and timeout answers are
deterministic). Skipped without the serve extra (``pip install -e '.[serve]'``).
"""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_server import running_server
from test_translate import run
from tiny_checkpoint import PAIRS, tiny_checkpoint

from nmt.translator import Translator

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

SOURCES = [zh for zh, _ in PAIRS]
TARGETS = [en for _, en in PAIRS]
KEY = "test-key-1"


@pytest.fixture(scope="module")
def server():
    zh_en, en_zh = tiny_checkpoint("transformer"), tiny_checkpoint("transformer", "en-zh")
    arguments = ["--checkpoint", str(zh_en), "--checkpoint", str(en_zh), "--batch-size", "64"]
    with running_server(*arguments, "--batch-wait-ms", "50", "--max-chars", "3000") as process:
        yield process


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"# test keys\n{KEY}\n\nother-key\n", encoding="utf-8")
    arguments = [
        "--checkpoint", str(tiny_checkpoint("transformer")), "--api-keys", str(keys),
        "--batch-size", "8", "--max-queue", "24", "--max-chars", "400",
        "--max-sentence-chars", "40", "--batch-wait-ms", "1000", "--timeout", "0.5",
    ]  # fmt: skip
    with running_server(*arguments) as process:
        yield process


def libre(server, **fields):
    return server.post_json("/translate", {"source": "zh", "target": "en", **fields})


# --- LibreTranslate compatibility ------------------------------------------------------------


def test_the_libretranslate_python_client_works_unchanged(server) -> None:
    libretranslatepy = pytest.importorskip("libretranslatepy")
    client = libretranslatepy.LibreTranslateAPI(server.url + "/")
    assert [client.translate(source, "zh", "en") for source in SOURCES[:4]] == TARGETS[:4]
    assert client.translate("I like cats.", "en", "zh") == "我喜欢猫。"
    assert client.translate(SOURCES[5], "auto", "en") == TARGETS[5]
    languages = {language["code"]: language["targets"] for language in client.languages()}
    assert languages == {"zh": ["en"], "en": ["zh"]}
    assert client.detect("他在看书。")[0]["language"] == "zh"


def test_a_list_q_gets_a_list_in_order_and_a_string_a_string(server) -> None:
    reply = libre(server, q=SOURCES)
    assert reply.status == 200 and reply.json() == {"translatedText": TARGETS}
    assert libre(server, q=SOURCES[0]).json() == {"translatedText": TARGETS[0]}
    form = server.post_form("/translate", {"q": SOURCES[1], "source": "zh", "target": "en"})
    assert form.status == 200 and form.json() == {"translatedText": TARGETS[1]}


def test_alternatives_are_other_distinct_translations(server) -> None:
    single = libre(server, q=SOURCES[3], alternatives=2).json()
    assert single["translatedText"] == TARGETS[3]
    assert len(single["alternatives"]) == 2 and TARGETS[3] not in single["alternatives"]
    listed = libre(server, q=SOURCES[:2], alternatives=1).json()
    assert listed["translatedText"] == TARGETS[:2]
    assert [len(alternatives) for alternatives in listed["alternatives"]] == [1, 1]


def test_texts_are_split_into_sentences_and_their_layout_kept(server) -> None:
    text = f"{SOURCES[3]}{SOURCES[1]}\n\n  {SOURCES[4]}\n"
    expected = f"{TARGETS[3]} {TARGETS[1]}\n\n  {TARGETS[4]}\n"
    assert libre(server, q=text).json()["translatedText"] == expected
    english = server.post_json(
        "/translate", {"q": "I like cats. How are you?", "source": "en", "target": "zh"}
    )
    assert english.json()["translatedText"] == "我喜欢猫。你好吗？"  # no space; full-width ?


def test_html_format_keeps_tags_and_escapes_text(server) -> None:
    markup = f'<p class="a">{SOURCES[3]}</p><!-- note --><b>{SOURCES[4]}</b><script>x="我"</script>'
    expected = (
        f'<p class="a">{TARGETS[3]}</p><!-- note --><b>{TARGETS[4]}</b><script>x="我"</script>'
    )
    assert libre(server, q=markup, format="html").json()["translatedText"] == expected
    escaped = server.post_json(
        "/translate",
        {"q": "<i>I don&#39;t know.</i>", "source": "en", "target": "zh", "format": "html"},
    )
    assert escaped.json()["translatedText"] == "<i>我不知道。</i>"
    as_text = libre(server, q=SOURCES[3], format="text").json()["translatedText"]
    assert as_text == TARGETS[3]


def test_source_auto_detects_each_text(server) -> None:
    reply = libre(server, q=[SOURCES[0], "Already English."], source="auto").json()
    assert reply["translatedText"] == [TARGETS[0], "Already English."]
    assert [d["language"] for d in reply["detectedLanguage"]] == ["zh", "en"]
    single = libre(server, q=SOURCES[2], source="auto").json()
    assert single["detectedLanguage"]["language"] == "zh" and single["translatedText"] == TARGETS[2]


def test_frontend_settings_languages_and_health(server) -> None:
    settings = server.request("GET", "/frontend/settings").json()
    assert settings["charLimit"] == 3000 and settings["keyRequired"] is False
    health = server.request("GET", "/health").json()
    assert health["status"] == "ok"
    assert [(m["source"], m["target"], m["engine"]) for m in health["models"]] == [
        ("zh", "en", "torch"),
        ("en", "zh", "torch"),
    ]
    openapi = server.request("GET", "/openapi.json").json()
    assert {"/translate", "/v1/translate", "/languages", "/health"} <= set(openapi["paths"])
    page = server.request("GET", "/")
    assert page.status == 200 and b'id="translate"' in page.body
    assert server.request("GET", "/static/app.js").status == 200


# --- our endpoint --------------------------------------------------------------------------


def test_v1_gives_what_the_library_gives_with_scores_and_attention(server) -> None:
    translator = Translator.from_checkpoint(tiny_checkpoint("transformer"))
    expected = translator.translate(
        SOURCES[:3], translator.settings(n_best=2, return_attention=True)
    )
    reply = server.post_json(
        "/v1/translate",
        {"q": SOURCES[:3], "source": "zh", "target": "en", "n_best": 2, "attention": True},
    )
    assert reply.status == 200
    body = reply.json()
    assert body["engine"] == "torch" and "note" not in body
    for result, mine in zip(body["results"], expected, strict=True):
        assert result["source_tokens"] == mine.source_pieces and result["truncated"] is False
        assert [c["text"] for c in result["translations"]] == [c.text for c in mine.candidates]
        for candidate, own in zip(result["translations"], mine.candidates, strict=True):
            assert candidate["tokens"] == own.pieces
            assert candidate["score"] == pytest.approx(own.score, abs=1e-4)
            assert torch.allclose(torch.tensor(candidate["attention"]), own.attention, atol=1e-4)
    plain = server.post_json("/v1/translate", {"q": SOURCES[0], "source": "zh", "target": "en"})
    assert "attention" not in plain.json()["results"][0]["translations"][0]


# --- dynamic batching ----------------------------------------------------------------------


def test_concurrent_requests_share_search_calls(server) -> None:
    before = server.metrics()
    clients = 16
    barrier = threading.Barrier(clients)

    def one(index: int) -> str:
        barrier.wait()
        return libre(server, q=SOURCES[index % len(SOURCES)]).json()["translatedText"]

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(one, range(clients)))
    assert answers == [TARGETS[i % len(TARGETS)] for i in range(clients)]
    after = server.metrics()
    batches = after["nmt_batch_requests_count"] - before["nmt_batch_requests_count"]
    requests = after["nmt_batch_requests_sum"] - before["nmt_batch_requests_sum"]
    assert requests == clients
    assert batches < clients / 2, f"{clients} concurrent requests took {batches} search calls"
    single = 'nmt_batch_requests_bucket{le="1"}'
    assert after[single] - before[single] < batches  # some call served several requests


# --- bad input and limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"source": "zh", "target": "en"}, "missing q parameter"),
        ({"q": "  ", "source": "zh", "target": "en"}, "missing q parameter"),
        ({"q": [], "source": "zh", "target": "en"}, "missing q parameter"),
        ({"q": 5, "source": "zh", "target": "en"}, "q must be a string or a list of strings"),
        ({"q": ["a", 1], "source": "zh", "target": "en"}, "q must be a string or a list"),
        ({"q": "a", "target": "en"}, "missing source parameter"),
        ({"q": "a", "source": "fr", "target": "en"}, "no model translates fr->en"),
        ({"q": "a", "source": "zh", "target": "zh"}, "no model translates zh->zh"),
        ({"q": "a", "source": "zh", "target": "en", "format": "pdf"}, "format"),
        ({"q": "a", "source": "zh", "target": "en", "alternatives": 99}, "alternatives"),
        ({"q": "a", "source": "zh", "target": "en", "alternatives": "x"}, "alternatives"),
    ],
)
def test_bad_libretranslate_requests_get_400_with_a_readable_message(server, body, message) -> None:
    reply = server.post_json("/translate", body)
    assert reply.status == 400 and message in reply.json()["error"]


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json", b"{not json", "not valid JSON"),
        ("application/json", b"[1, 2]", "must be a JSON object"),
        ("application/json", b"\xff\xfe", "not valid JSON"),
        ("application/json", b"[" * 10000, "not valid JSON"),
        ("application/x-www-form-urlencoded", b'{"q": "x"}', "Content-Type: application/json"),
        ("multipart/form-data; boundary=zz", b"--zz\r\nbroken", "missing q"),
    ],
)
def test_malformed_bodies_get_400(server, content_type, body, message) -> None:
    reply = server.request("POST", "/translate", body, {"Content-Type": content_type})
    assert reply.status == 400 and message in reply.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"q": "a", "source": "zh", "target": "en", "beam_size": 0}, "beam_size"),
        ({"q": "a", "source": "zh", "target": "en", "beam_size": 100}, "beam_size"),
        ({"q": "a", "source": "zh", "target": "en", "beam_size": 2, "n_best": 3}, "n_best"),
        ({"q": "a", "source": "zh", "target": "en", "length_penalty": "x"}, "length_penalty"),
        ({"q": "a", "source": "zh", "target": "en", "surprise": 1}, "surprise"),
        ({"source": "zh", "target": "en"}, "missing q"),
    ],
)
def test_bad_v1_requests_get_400(server, body, message) -> None:
    reply = server.post_json("/v1/translate", body)
    assert reply.status == 400 and message in reply.json()["error"]


def test_unknown_paths_and_methods_are_json_errors(server) -> None:
    assert server.request("GET", "/nowhere").json() == {"error": "Not Found"}
    assert server.request("GET", "/translate").status == 405


def test_api_keys_are_required_when_configured(strict) -> None:
    eight = SOURCES[:8]  # a full batch: decoded without waiting out the long window
    missing = strict.post_json("/translate", {"q": eight, "source": "zh", "target": "en"})
    assert missing.status == 403 and "api_key" in missing.json()["error"]
    wrong = strict.post_json(
        "/translate", {"q": eight, "source": "zh", "target": "en", "api_key": "nope"}
    )
    assert wrong.status == 403 and wrong.json()["error"] == "Invalid API key"
    good = strict.post_json(
        "/translate", {"q": eight, "source": "zh", "target": "en", "api_key": KEY}
    )
    assert good.status == 200 and good.json()["translatedText"] == TARGETS[:8]
    form = strict.post_form(
        "/translate", {"q": eight, "source": "zh", "target": "en", "api_key": KEY}
    )
    assert form.status == 200 and form.json()["translatedText"] == TARGETS[:8]
    v1 = strict.post_json("/v1/translate", {"q": eight, "source": "zh", "target": "en"})
    assert v1.status == 403
    assert strict.request("GET", "/frontend/settings").json()["keyRequired"] is True


@pytest.mark.parametrize(
    ("q", "message"),
    [
        (["我喜欢猫。" * 7] * 12, "characters; this server takes 400"),
        ("我" * 41, "a sentence of 41 characters; this server takes 40 per sentence"),
        (["你好吗?"] * 25, "the request has 25 sentences; this server queues 24"),
    ],
)
def test_oversized_requests_get_413(strict, q, message) -> None:
    reply = strict.post_json("/translate", {"q": q, "source": "zh", "target": "en", "api_key": KEY})
    assert reply.status == 413 and message in reply.json()["error"]


def test_a_body_over_the_byte_limit_is_refused_before_parsing(strict) -> None:
    body = b'{"q": "' + b"x" * 100_000 + b'"}'
    reply = strict.request("POST", "/translate", body, {"Content-Type": "application/json"})
    assert reply.status == 413 and reply.json() == {"error": "the request body is too large"}


def test_a_full_queue_answers_429_and_a_slow_request_503(strict) -> None:
    """Five queued sentences wait out the 1 s window (fewer than the batch of 8), so the
    twenty sentences sent meanwhile overflow the 24-sentence queue; the five then pass the
    0.5 s timeout. Afterwards the queue is empty again."""
    before = strict.metrics()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            strict.post_json,
            "/translate",
            {"q": SOURCES[:5], "source": "zh", "target": "en", "api_key": KEY},
        )
        for _ in range(50):  # until the five are queued
            if strict.metrics()["nmt_queued_sentences"] == 5:
                break
            threading.Event().wait(0.01)
        overflow = strict.post_json(
            "/translate", {"q": SOURCES * 2, "source": "zh", "target": "en", "api_key": KEY}
        )
        assert overflow.status == 429 and overflow.headers.get("retry-after") == "1"
        assert "queue is full" in overflow.json()["error"]
        late = waiting.result()
    assert late.status == 503 and "longer than 0.5 s" in late.json()["error"]
    after = strict.metrics()
    assert (
        after['nmt_rejected_total{reason="queue_full"}']
        - before.get('nmt_rejected_total{reason="queue_full"}', 0)
        == 1
    )
    assert (
        after['nmt_rejected_total{reason="timeout"}']
        - before.get('nmt_rejected_total{reason="timeout"}', 0)
        == 1
    )
    assert after["nmt_queued_sentences"] == 0  # the timed-out job left the queue


# --- robustness ----------------------------------------------------------------------------

FIELD_NAMES = st.sampled_from(["q", "source", "target", "format", "alternatives", "api_key", "x"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
REQUEST_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "q": st.one_of(
            st.text(max_size=60), st.lists(st.text(max_size=20), max_size=5), JSON_VALUES
        ),
        "source": st.sampled_from(["zh", "en", "auto", "fr", "", "ZH-Hans"]) | st.text(max_size=5),
        "target": st.sampled_from(["zh", "en", "de"]) | JSON_VALUES,
        "format": st.sampled_from(["text", "html", "pdf"]) | JSON_VALUES,
        "alternatives": st.integers(-2, 20) | JSON_VALUES,
        "beam_size": st.integers(-1, 20),
        "attention": st.booleans() | JSON_VALUES,
    },
)
# Mostly valid requests with hostile text: random Unicode, HTML-like markup, entities.
TEXTS = st.text(max_size=80) | st.from_regex(
    r"(<[a-z/!?][^>]{0,12}>?|[^<&]{0,12}|&[a-z#0-9]{0,6};?)*", fullmatch=True
)
PLAUSIBLE = st.fixed_dictionaries(
    {
        "q": TEXTS | st.lists(TEXTS, min_size=1, max_size=4),
        "source": st.sampled_from(["zh", "en", "auto"]),
        "target": st.sampled_from(["en", "zh"]),
    },
    optional={"format": st.sampled_from(["text", "html"]), "alternatives": st.integers(0, 3)},
)
PLAUSIBLE_JSON = st.tuples(
    st.just("application/json"), PLAUSIBLE.map(lambda d: json.dumps(d).encode())
)
BODIES = st.one_of(
    PLAUSIBLE_JSON,
    PLAUSIBLE_JSON,
    st.tuples(st.just("application/json"), REQUEST_FIELDS.map(lambda d: json.dumps(d).encode())),
    st.tuples(st.just("application/json"), JSON_VALUES.map(lambda v: json.dumps(v).encode())),
    st.tuples(st.sampled_from(["application/json", "text/plain", ""]), st.binary(max_size=200)),
    st.tuples(
        st.just("application/x-www-form-urlencoded"),
        st.dictionaries(FIELD_NAMES, st.text(max_size=30), max_size=5).map(
            lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass")
        ),
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(["/translate"] * 3 + ["/v1/translate", "/detect"]), body=BODIES)
def test_fuzzed_bodies_never_get_a_500(server, path, body) -> None:
    content_type, data = body
    reply = server.request(
        "POST", path, data, {"Content-Type": content_type} if content_type else {}
    )
    assert reply.status in (200, 400, 413), (reply.status, reply.body[:300])
    answer = reply.json()  # always JSON
    if reply.status != 200:
        assert set(answer) == {"error"} and "Traceback" not in answer["error"]


def test_garbage_on_the_socket_does_not_stop_the_server(server) -> None:
    for garbage in (
        b"\x00\xff" * 100 + b"\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /translate HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{",
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
            connection.sendall(garbage)
            try:
                connection.recv(1000)
            except OSError:
                pass
    assert server.alive()
    assert libre(server, q=SOURCES[0]).json()["translatedText"] == TARGETS[0]


# --- the command ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--max-chars", "0"], "--max-chars 0: expected a positive number"),
        (["--batch-wait-ms", "5000"], "--batch-wait-ms 5000.0: expected 0 to 1000"),
        (["--api-keys", "/nonexistent/keys"], "cannot read the API keys file /nonexistent/keys"),
        (["--threads", "0"], "--threads 0: expected a positive number"),
    ],
)
def test_bad_serve_options_are_one_line_errors(arguments, message) -> None:
    code, _, err = run(["serve", "--checkpoint", str(tiny_checkpoint("transformer")), *arguments])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_two_models_for_one_pair_are_refused(tmp_path: Path) -> None:
    checkpoint = str(tiny_checkpoint("transformer"))
    code, _, err = run(["serve", "--checkpoint", checkpoint, "--checkpoint", checkpoint])
    assert code == 2 and "two models translate zh->en" in err


def test_the_ctranslate2_engine_serves_the_same(tmp_path: Path) -> None:
    pytest.importorskip("ctranslate2")
    from nmt.engines.ctranslate2_export import export_ctranslate2

    export = export_ctranslate2(tiny_checkpoint("transformer"), tmp_path / "ct2", "float32")
    with running_server("--checkpoint", str(export)) as ct2_server:
        assert libre(ct2_server, q=SOURCES).json() == {"translatedText": TARGETS}
        health = ct2_server.request("GET", "/health").json()
        assert health["models"][0]["engine"] == "ctranslate2"
        reply = ct2_server.post_json(
            "/v1/translate", {"q": SOURCES[:2], "source": "zh", "target": "en", "attention": True}
        ).json()
        assert reply["engine"] == "ctranslate2" and "note" not in reply
        for result in reply["results"]:
            best = result["translations"][0]
            assert len(best["attention"]) == len(best["tokens"]) + 1
