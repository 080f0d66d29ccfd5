"""Attention heat maps: source subwords across, output subwords down, weights as colour.

matplotlib is an optional extra (``pip install 'nmt[plot]'``); it is imported only when a
plot is drawn, through the object-oriented API (no pyplot state, no display needed).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from nmt.errors import NmtError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Fonts with CJK glyphs, tried in order; DejaVu Sans (matplotlib's own) covers the rest.
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "Arial Unicode MS",
)


def require_matplotlib() -> None:
    """Fail early, with the install command, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NmtError(
            "attention plots need matplotlib: pip install 'nmt[plot]' (or pip install matplotlib)"
        ) from None


def plot_attention(
    weights: Tensor,
    source_tokens: list[str],
    output_tokens: list[str],
    path: str | Path,
    title: str | None = None,
) -> None:
    """Write a heat map of ``weights`` ``(len(output_tokens), len(source_tokens))`` as PNG."""
    require_matplotlib()
    from matplotlib import font_manager
    from matplotlib.figure import Figure

    if tuple(weights.shape) != (len(output_tokens), len(source_tokens)):
        raise ValueError(
            f"attention of shape {tuple(weights.shape)} for {len(output_tokens)} output and "
            f"{len(source_tokens)} source tokens"
        )
    installed = {font.name for font in font_manager.fontManager.ttflist}
    families = [name for name in CJK_FONTS if name in installed] + ["DejaVu Sans"]
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
    with warnings.catch_warnings():
        # Without a CJK font, Chinese labels show as boxes; the warning per glyph is noise.
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        figure.savefig(path, format="png", dpi=100)


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
    from matplotlib import font_manager
    from matplotlib.figure import Figure

    panels = weights.size(0)
    if tuple(weights.shape[1:]) != (len(row_tokens), len(column_tokens)) or panels != len(titles):
        raise ValueError(
            f"attention of shape {tuple(weights.shape)} for {len(titles)} panels of "
            f"{len(row_tokens)} rows and {len(column_tokens)} columns"
        )
    installed = {font.name for font in font_manager.fontManager.ttflist}
    families = [name for name in CJK_FONTS if name in installed] + ["DejaVu Sans"]
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
    """Write ``figure`` as PNG, without a warning per glyph that the fonts lack."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        figure.savefig(path, format="png", dpi=100)
