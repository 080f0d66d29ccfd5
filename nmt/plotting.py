"""Attention heat maps: source subwords across, output subwords down, weights as colour.

matplotlib is an optional extra (``pip install 'nmt[plot]'``); it is imported only when a
plot is drawn, through the object-oriented API (no pyplot state, no display needed).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from torch import Tensor

from nmt.errors import NmtError

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
