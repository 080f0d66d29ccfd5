"""Attention heat maps: source subwords across, output subwords down, weights as colour.

matplotlib is an optional extra (``pip install 'nmt[plot]'``); it is imported only when a
plot is drawn, through the object-oriented API (no pyplot state, no display needed).

Chinese labels need a font with CJK glyphs, which matplotlib does not ship. :func:`find_cjk_font`
looks for an installed one (Noto CJK, Source Han, WenQuanYi, Droid Sans Fallback, AR PL...,
checking that it really maps Chinese characters); without one, labels with Chinese
characters show as boxes and :func:`plot_attention` says so, once per process, naming the
package to install.
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from nmt.errors import NmtError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Family names of fonts with CJK glyphs, best first; Simplified Chinese faces are preferred
# within a family (the ordering key below). A match still has to map PROBE_CHARACTERS.
CJK_FONT_PATTERNS = (
    r"Noto Sans CJK",
    r"Noto Sans (SC|TC|HK|JP|KR)\b",
    r"Source Han Sans",
    r"Noto Serif CJK",
    r"Source Han Serif",
    r"WenQuanYi",
    r"Droid Sans Fallback",
    r"AR PL",
    r"SimHei|SimSun|Microsoft YaHei|PingFang|Heiti|Hiragino Sans GB|STHeiti|Songti",
    r"Arial Unicode MS",
)
PROBE_CHARACTERS = "中文语"  # common Simplified characters (语 is not in Traditional fonts)
CJK_FONT_PACKAGE = "fonts-noto-cjk"  # Debian and Ubuntu
# Fonts that map every code point to a placeholder glyph (matplotlib ships Last Resort):
# they pass the character test but draw boxes.
_PLACEHOLDER_FONTS = re.compile(r"Last Resort", re.IGNORECASE)
_PLACEHOLDER_CMAP_SIZE = 0x30000  # no real font maps this many code points

_CJK_TEXT = re.compile("[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


class CJKFontWarning(UserWarning):
    """No installed font can draw Chinese characters."""


_warned_no_cjk_font = False


def require_matplotlib() -> None:
    """Fail early, with the install command, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NmtError(
            "attention plots need matplotlib: pip install 'nmt[plot]' (or pip install matplotlib)"
        ) from None


@functools.cache
def find_cjk_font() -> str | None:
    """The family name of an installed font that draws Chinese, or None.

    Fonts named like a CJK family come first (Simplified Chinese faces before the others);
    failing those, any installed font that maps the probe characters. Either way the font's
    character map is checked, so a misnamed font or a placeholder font is not taken.
    """
    from matplotlib import font_manager

    fonts = [font for font in font_manager.fontManager.ttflist if font.fname]
    named = sorted(
        (font for font in fonts if _pattern_rank(font.name) is not None),
        key=lambda font: (_pattern_rank(font.name), not _is_simplified(font.name), font.name),
    )
    checked: set[tuple[str, int]] = set()
    for font in named + fonts:
        face = (font.fname, getattr(font, "index", 0))
        if face in checked or _PLACEHOLDER_FONTS.search(font.name):
            continue
        checked.add(face)
        if _draws_chinese(*face):
            return font.name
    return None


def _pattern_rank(name: str) -> int | None:
    for rank, pattern in enumerate(CJK_FONT_PATTERNS):
        if re.search(pattern, name, re.IGNORECASE):
            return rank
    return None


def _is_simplified(name: str) -> bool:
    return re.search(r"\b(SC|GB|CN)\b|Simplified|Hei|YaHei|WenQuanYi", name) is not None


def _draws_chinese(path: str, face_index: int = 0) -> bool:
    """Whether the font file maps every probe character (and is no placeholder font)."""
    from matplotlib import ft2font

    try:
        charmap = ft2font.FT2Font(path, face_index=face_index).get_charmap()
    except (OSError, RuntimeError, ValueError, TypeError):  # unreadable or unusual files
        return False
    if len(charmap) >= _PLACEHOLDER_CMAP_SIZE:
        return False
    return all(ord(char) in charmap for char in PROBE_CHARACTERS)


def _warn_no_cjk_font() -> None:
    """Once per process: Chinese labels will be boxes, and what to install."""
    global _warned_no_cjk_font
    if _warned_no_cjk_font:
        return
    _warned_no_cjk_font = True
    from matplotlib import get_cachedir

    warnings.warn(
        "no installed font has Chinese characters, so Chinese labels in attention plots show "
        f"as boxes; install one (Debian/Ubuntu: apt install {CJK_FONT_PACKAGE}) and delete "
        f"matplotlib's font cache ({get_cachedir()}/fontlist-*.json) so that it is found",
        CJKFontWarning,
        stacklevel=3,
    )


def label_fonts(labels: list[str]) -> list[str]:
    """Font families for labels: a CJK font first when a label has Chinese (warning once when
    none is installed), then DejaVu Sans, matplotlib's own, for the rest (it falls back per
    glyph)."""
    families = ["DejaVu Sans"]  # matplotlib's own; it has no CJK glyphs
    if any(_CJK_TEXT.search(label) for label in labels):
        cjk_font = find_cjk_font()
        if cjk_font is None:
            _warn_no_cjk_font()
        else:
            families.insert(0, cjk_font)
    return families


def plot_attention(
    weights: Tensor,
    source_tokens: list[str],
    output_tokens: list[str],
    path: str | Path,
    title: str | None = None,
) -> None:
    """Write a heat map of ``weights`` ``(len(output_tokens), len(source_tokens))`` as PNG."""
    require_matplotlib()
    from matplotlib.figure import Figure

    if tuple(weights.shape) != (len(output_tokens), len(source_tokens)):
        raise ValueError(
            f"attention of shape {tuple(weights.shape)} for {len(output_tokens)} output and "
            f"{len(source_tokens)} source tokens"
        )
    families = label_fonts([*source_tokens, *output_tokens, title or ""])
    # Each cell about a third of an inch, within sensible bounds for long sentences.
    width = min(max(3.0 + 0.35 * len(source_tokens), 4.0), 30.0)
    height = min(max(2.0 + 0.35 * len(output_tokens), 3.0), 30.0)
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(weights.float().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(source_tokens)), source_tokens, rotation=90, family=families)
    axes.set_yticks(range(len(output_tokens)), output_tokens, family=families)
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    if title:
        axes.set_title(title, family=families, fontsize="medium")
    figure.colorbar(image, ax=axes, label="attention")
    save_figure(figure, path)


def attention_grid(
    weights: Tensor,
    column_tokens: list[str],
    row_tokens: list[str],
    titles: list[str],
    axis_labels: tuple[str, str] = ("source", "output"),
    title: str | None = None,
) -> Figure:
    """A figure of heat maps side by side, one per ``weights[i]`` ``(len(row_tokens),
    len(column_tokens))`` with title ``titles[i]`` (every head of a layer, say), on one
    colour scale; ``axis_labels`` name the columns (keys) and the rows (queries)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    panels = weights.size(0)
    if tuple(weights.shape[1:]) != (len(row_tokens), len(column_tokens)) or panels != len(titles):
        raise ValueError(
            f"attention of shape {tuple(weights.shape)} for {len(titles)} panels of "
            f"{len(row_tokens)} rows and {len(column_tokens)} columns"
        )
    families = label_fonts([*column_tokens, *row_tokens, title or ""])
    columns = min(panels, 4)
    grid_rows = -(-panels // columns)
    # Cells of about a third of an inch, as in plot_attention, within bounds.
    width = min(max(2.0 + 0.35 * len(column_tokens), 3.0) * columns + 1.0, 40.0)
    height = min(max(1.5 + 0.35 * len(row_tokens), 2.5) * grid_rows + 0.5, 40.0)
    figure = Figure(figsize=(width, height), layout="constrained")
    axes_grid = figure.subplots(grid_rows, columns, squeeze=False)
    image = None
    for index, axes in enumerate(axes_grid.flat):
        if index >= panels:
            axes.set_axis_off()
            continue
        image = axes.imshow(
            weights[index].float().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto"
        )
        axes.set_xticks(range(len(column_tokens)), column_tokens, rotation=90, family=families)
        axes.set_yticks(range(len(row_tokens)), row_tokens, family=families)
        axes.set_xlabel(axis_labels[0])
        axes.set_ylabel(axis_labels[1])
        axes.set_title(titles[index], fontsize="medium")
    if title:
        figure.suptitle(title, family=families, fontsize="medium")
    figure.colorbar(image, ax=axes_grid, label="attention")
    return figure


def save_figure(figure: Figure, path: str | Path) -> None:
    """Write ``figure`` as PNG, without a warning per glyph that the fonts lack (a missing CJK
    font is said once, by :func:`label_fonts`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        figure.savefig(path, format="png", dpi=100)
