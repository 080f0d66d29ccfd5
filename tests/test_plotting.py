"""Attention plots: a CJK font when one is installed, one clear warning when none is."""

import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("matplotlib")

from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nmt import plotting  # noqa: E402

WEIGHTS = torch.softmax(torch.randn(3, 2), dim=-1)
SOURCE, OUTPUT = ["▁我们", "去"], ["▁We", "▁go", "</s>"]
FIND_CJK_FONT = plotting.find_cjk_font  # the cached function, whatever a test patches in


@pytest.fixture(autouse=True)
def _fresh_font_state(monkeypatch):
    FIND_CJK_FONT.cache_clear()
    monkeypatch.setattr(plotting, "_warned_no_cjk_font", False)
    yield
    FIND_CJK_FONT.cache_clear()


@pytest.fixture
def drawn(monkeypatch) -> list[Figure]:
    """The figures plot_attention saves (still written to disk)."""
    figures = []
    save = Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def label_families(figure: Figure) -> dict[str, list[str]]:
    axes = figure.axes[0]
    return {
        "x": axes.get_xticklabels()[0].get_fontfamily(),
        "y": axes.get_yticklabels()[0].get_fontfamily(),
        "title": axes.title.get_fontfamily(),
    }


def test_a_found_cjk_font_is_used_for_ticks_and_title(monkeypatch, tmp_path, drawn):
    # An installed font stands in for the CJK one, so the test runs on any machine.
    monkeypatch.setattr(plotting, "find_cjk_font", lambda: "DejaVu Serif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when a font is found
        plotting.plot_attention(WEIGHTS, SOURCE, OUTPUT, tmp_path / "a.png", "我们去 -> We go")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    families = label_families(drawn[0])
    assert families == {name: ["DejaVu Serif", "DejaVu Sans"] for name in ("x", "y", "title")}


def test_without_a_cjk_font_one_warning_per_process(monkeypatch, tmp_path, drawn):
    monkeypatch.setattr(plotting, "find_cjk_font", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the once-per-process rule is the module's own
        for name in ("a", "b", "c"):
            plotting.plot_attention(WEIGHTS, SOURCE, OUTPUT, tmp_path / f"{name}.png", "我们去")
    font_warnings = [w for w in caught if issubclass(w.category, plotting.CJKFontWarning)]
    assert len(font_warnings) == 1
    message = str(font_warnings[0].message)
    assert "Chinese labels" in message and "boxes" in message
    assert "apt install fonts-noto-cjk" in message
    assert not [w for w in caught if "missing from" in str(w.message)]  # no per-glyph noise
    assert all((tmp_path / f"{name}.png").is_file() for name in "abc")
    assert label_families(drawn[0])["x"] == ["DejaVu Sans"]


def test_labels_without_chinese_need_no_cjk_font(monkeypatch, tmp_path):
    def fail():
        raise AssertionError("looked for a CJK font")

    monkeypatch.setattr(plotting, "find_cjk_font", fail)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plotting.plot_attention(WEIGHTS, ["▁we", "▁go"], OUTPUT, tmp_path / "a.png", "we go")


def entry(name: str, fname: str, index: int = 0) -> font_manager.FontEntry:
    return font_manager.FontEntry(fname=fname, name=name, index=index)


def test_the_search_prefers_simplified_faces_and_checks_the_glyphs(monkeypatch):
    fonts = [
        entry("DejaVu Sans", "/fonts/DejaVuSans.ttf"),
        entry("Noto Serif CJK SC", "/fonts/NotoSerifCJK.ttc", 2),
        entry("Noto Sans CJK JP", "/fonts/NotoSansCJK.ttc", 0),
        entry("Noto Sans CJK SC", "/fonts/NotoSansCJK.ttc", 2),
        entry("WenQuanYi Zen Hei", "/fonts/wqy-zenhei.ttc"),
    ]
    drawing = {("/fonts/NotoSansCJK.ttc", 0), ("/fonts/NotoSansCJK.ttc", 2)}
    monkeypatch.setattr(font_manager.fontManager, "ttflist", fonts)
    monkeypatch.setattr(plotting, "_draws_chinese", lambda path, index=0: (path, index) in drawing)
    assert plotting.find_cjk_font() == "Noto Sans CJK SC"

    plotting.find_cjk_font.cache_clear()  # a name alone is not enough: glyphs are checked
    drawing = {("/fonts/wqy-zenhei.ttc", 0)}
    assert plotting.find_cjk_font() == "WenQuanYi Zen Hei"

    plotting.find_cjk_font.cache_clear()  # any font with the glyphs, whatever its name
    fonts.append(entry("Some Font", "/fonts/some.ttf"))
    drawing = {("/fonts/some.ttf", 0)}
    assert plotting.find_cjk_font() == "Some Font"

    plotting.find_cjk_font.cache_clear()
    drawing = set()
    assert plotting.find_cjk_font() is None


def test_a_placeholder_font_is_not_a_cjk_font(monkeypatch):
    # matplotlib ships Last Resort, which maps every code point to a box.
    last_resort = [f for f in font_manager.fontManager.ttflist if "Last Resort" in f.name]
    dejavu = font_manager.findfont("DejaVu Sans")
    assert not plotting._draws_chinese(dejavu)
    if not last_resort:
        pytest.skip("this matplotlib ships no Last Resort font")
    assert not plotting._draws_chinese(last_resort[0].fname)
    monkeypatch.setattr(font_manager.fontManager, "ttflist", last_resort)
    assert plotting.find_cjk_font() is None


def test_an_installed_cjk_font_draws_chinese():
    """On a machine with a CJK font (Debian: fonts-noto-cjk), the real search finds it."""
    name = plotting.find_cjk_font()
    if name is None:
        pytest.skip("no CJK font installed")
    path = font_manager.findfont(name, fallback_to_default=False)
    assert Path(path).is_file()
