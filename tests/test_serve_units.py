"""The server's parts without HTTP: sentence splitting and HTML templates, language
detection, the dynamic batcher (with a fake translator that decodes on command), limits."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from nmt.config import DecodingSettings
from nmt.errors import NmtError
from nmt.serve import languages
from nmt.serve.batcher import DynamicBatcher, QueueFull
from nmt.serve.metrics import Metrics
from nmt.serve.service import ServeLimits
from nmt.serve.text import escape_html, html_template, split_sentences, text_template
from nmt.translator import Candidate, Translation

# --- texts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "sentences"),
    [
        ("我喜欢猫。他在看书！你呢?", ["我喜欢猫。", "他在看书！", "你呢?"]),
        ("Hello world. How are you?", ["Hello world.", "How are you?"]),
        ("3.5 apples...and more", ["3.5 apples...and more"]),  # dots inside a word
        ('He said "yes." Then left.', ['He said "yes."', "Then left."]),
        ("他说：“你好。”我走了。", ["他说：“你好。”", "我走了。"]),
        ("no end", ["no end"]),
        ("?!", ["?!"]),
        ("Wait... what", ["Wait...", "what"]),
        ("." * 3000 + "x", ["." * 3000 + "x"]),  # once quadratic: 0.35 s for 5,000 dots
    ],
)
def test_split_sentences(line: str, sentences: list[str]) -> None:
    assert split_sentences(line) == sentences


def test_text_templates_keep_line_breaks_and_outer_spaces() -> None:
    text = "  A. B!\r\n\nC\n"
    template = text_template(text)
    assert template.sentences == ["A.", "B!", "C"]
    assert template.render(["1", "2", "3"], " ") == "  1 2\r\n\n3\n"
    assert template.render(["1", "2", "3"], "") == "  12\r\n\n3\n"  # a Chinese target
    assert text_template("   ").render([], " ") == "   "
    assert text_template("").sentences == []


def test_html_templates_translate_text_between_tags_only() -> None:
    markup = (
        '<!DOCTYPE html><p class="x">Hi &amp; bye. <b>Bold</b></p><!-- c -->'
        '<script>if (a < b) x = "<b>";</script><br/>end'
    )
    template = html_template(markup)
    assert template.sentences == ["Hi & bye.", "Bold", "end"]
    rendered = template.render(["<1>", "2", "3"], " ", escape_html)
    assert rendered == (
        '<!DOCTYPE html><p class="x">&lt;1&gt; <b>2</b></p><!-- c -->'
        '<script>if (a < b) x = "<b>";</script><br/>3'
    )
    broken = html_template("<p unclosed <<>> & text")  # never raises
    assert broken.render(broken.sentences, " ", escape_html).endswith("text")


def test_language_detection_by_script() -> None:
    assert languages.detect("我喜欢猫。", ["en", "zh"])[0] == "zh"
    assert languages.detect("I like cats. 猫", ["en", "zh"])[0] == "en"
    assert languages.detect("12345", ["en", "zh"])[0] == "en"
    assert languages.detect("Hallo", ["de", "en", "zh"]) is None  # cannot tell de from en
    assert languages.canonical(" ZH-Hans ") == "zh"


# --- the batcher -------------------------------------------------------------------------


class FakeTranslator:
    """Echoes sentences upper-cased; holds each call until released, records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], DecodingSettings]] = []
        self.release = threading.Semaphore(0)
        self.entered = threading.Semaphore(0)

    def translate(self, sentences, settings):
        self.calls.append((list(sentences), settings))
        self.entered.release()
        self.release.acquire()
        if "boom" in sentences:
            raise RuntimeError("boom")
        return [Translation([s], [Candidate(s.upper(), [s], 0.0, 0.0)]) for s in sentences]


@pytest.fixture
def batcher():
    translator = FakeTranslator()
    batcher = DynamicBatcher(translator, Metrics(), max_batch=5, max_queued=12, wait=0.0)
    yield batcher, translator
    for _ in range(20):
        translator.release.release()
    batcher.close()


GREEDY, BEAM = DecodingSettings(beam_size=1), DecodingSettings(beam_size=3)


def test_jobs_waiting_together_share_one_call_in_order(batcher) -> None:
    batcher, translator = batcher
    first = batcher.submit(["a"], GREEDY)
    translator.entered.acquire()  # the worker holds the first job: the others queue
    second, third = batcher.submit(["b", "c"], GREEDY), batcher.submit(["d"], GREEDY)
    other = batcher.submit(["e"], BEAM)  # other settings: its own call
    fourth = batcher.submit(["f", "g", "h"], GREEDY)  # would make 6 > max_batch 5
    for _ in range(4):
        translator.release.release()
    results = [f.result(5) for f in (first, second, third, other, fourth)]
    assert [[t.text for t in result] for result in results] == [
        ["A"],
        ["B", "C"],
        ["D"],
        ["E"],
        ["F", "G", "H"],
    ]
    assert [(sentences, settings.beam_size) for sentences, settings in translator.calls] == [
        (["a"], 1),
        (["b", "c", "d"], 1),
        (["e"], 3),
        (["f", "g", "h"], 1),
    ]
    metrics = batcher.metrics
    assert metrics.batch_requests.count == 4 and metrics.batch_requests.total == 5
    assert metrics.queued_sentences == 0


def test_a_job_larger_than_a_batch_goes_whole(batcher) -> None:
    batcher, translator = batcher
    translator.release.release()
    assert len(batcher.submit(list("abcdefg"), GREEDY).result(5)) == 7


def test_a_full_queue_refuses_and_a_cancelled_job_frees_its_place(batcher) -> None:
    batcher, translator = batcher
    batcher.submit(["a"], GREEDY)
    translator.entered.acquire()  # busy: what follows stays queued
    waiting = batcher.submit(list("abcdefghij"), GREEDY)
    with pytest.raises(QueueFull):
        batcher.submit(list("xyz"), GREEDY)  # 10 + 3 > 12
    assert waiting.cancel()
    assert batcher.metrics.queued_sentences == 0
    later = batcher.submit(list("xyz"), GREEDY)
    for _ in range(2):
        translator.release.release()
    assert [t.text for t in later.result(5)] == ["X", "Y", "Z"]
    with pytest.raises(CancelledError):
        waiting.result(0)
    assert all("j" not in sentences for sentences, _ in translator.calls)  # never decoded


def test_a_failing_batch_fails_its_requests_and_the_worker_goes_on(batcher) -> None:
    batcher, translator = batcher
    failing = batcher.submit(["boom"], GREEDY)
    translator.release.release()
    with pytest.raises(RuntimeError, match="boom"):
        failing.result(5)
    translator.release.release()
    assert batcher.submit(["ok"], GREEDY).result(5)[0].text == "OK"


def test_limits_are_checked_naming_the_field() -> None:
    with pytest.raises(NmtError, match="max_chars: expected a positive number, got 0"):
        ServeLimits(max_chars=0)
    with pytest.raises(NmtError, match="batch_wait_ms: expected 0 to 1000"):
        ServeLimits(batch_wait_ms=-1)
    assert ServeLimits(max_chars=100).max_body_bytes == 900 + 16384
