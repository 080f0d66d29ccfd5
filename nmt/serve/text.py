"""Texts into the sentences a model translates, and the translations back into the text.

The models are trained on single sentences, but API clients send paragraphs, several lines or
HTML. A :class:`Template` keeps what is not translated (line breaks, the whitespace around
lines, HTML tags, comments, scripts) and numbers the sentences that are; rendering puts the
translations in their places. Two sentences of one line are joined by :data:`GAP`: a space
in the target text, or nothing when the target is Chinese.

Sentences end at ``。！？!?…`` (with any closing quotes or brackets) or at dots followed by
whitespace; a simple rule, so an abbreviation such as "Mr. Smith" is cut in two.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser

GAP = object()  # between two sentences of one line
_CLOSING = "”’\"'」』）)\\]"  # quotes and brackets that close a sentence
# A run of dots is tried from its first dot only (the lookbehind), so a long run that does
# not end a sentence costs linear time, not quadratic.
_SENTENCE_END = re.compile(rf"(?:[。！？!?…]+|(?<!\.)\.+(?=[{_CLOSING}]*\s))[{_CLOSING}]*\s*")
_LINE_BREAK = re.compile(r"(\n)")
_RAW_TEXT_TAGS = frozenset({"script", "style"})  # content kept verbatim (CDATA)


@dataclass
class Template:
    """Literal strings, :data:`GAP`s and sentence numbers (indices into ``sentences``)."""

    parts: list[str | int | object] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)

    def add_text(self, text: str) -> None:
        """Append plain text: its sentences as slots, line breaks and outer spaces as they are."""
        for line in _LINE_BREAK.split(text):
            content = line.strip()
            if not content:
                if line:
                    self.parts.append(line)
                continue
            start = len(line) - len(line.lstrip())
            if start:
                self.parts.append(line[:start])
            for number, sentence in enumerate(split_sentences(content)):
                if number:
                    self.parts.append(GAP)
                self.parts.append(len(self.sentences))
                self.sentences.append(sentence)
            end = len(line.rstrip())
            if end < len(line):
                self.parts.append(line[end:])

    def render(
        self, translations: Sequence[str], gap: str, escape: Callable[[str], str] = str
    ) -> str:
        """The text with sentence ``i`` replaced by ``escape(translations[i])``."""
        out = []
        for part in self.parts:
            if part is GAP:
                out.append(gap)
            elif isinstance(part, int):
                out.append(escape(translations[part]))
            else:
                out.append(part)
        return "".join(out)


def split_sentences(line: str) -> list[str]:
    """The sentences of one line without line breaks (its outer whitespace stripped)."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(line):
        sentence = line[start : match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    rest = line[start:].strip()
    return sentences + [rest] if rest else sentences


def text_template(text: str) -> Template:
    template = Template()
    template.add_text(text)
    return template


def html_template(markup: str) -> Template:
    """Tags, comments and the content of script/style elements stay as they are; the text
    between tags is translated (entities decoded first, the translation escaped again by
    ``render(..., escape=escape_html)``)."""
    parser = _TemplateParser()
    parser.feed(markup)
    parser.close()
    return parser.template


def escape_html(text: str) -> str:
    return html.escape(text, quote=False)


class _TemplateParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.template = Template()
        self._raw_tag: str | None = None  # inside <script>, <style>...: kept verbatim

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.template.parts.append(self.get_starttag_text() or f"<{tag}>")
        if tag in _RAW_TEXT_TAGS:
            self._raw_tag = tag

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.template.parts.append(self.get_starttag_text() or f"<{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        self.template.parts.append(f"</{tag}>")
        if tag == self._raw_tag:
            self._raw_tag = None

    def handle_data(self, data: str) -> None:
        if self._raw_tag is not None:
            self.template.parts.append(data)
        else:
            self.template.add_text(data)

    def handle_comment(self, data: str) -> None:
        self.template.parts.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.template.parts.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.template.parts.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.template.parts.append(f"<![{data}]>")
