"""What a user looks at: the heatmap overlay and the curve plot.

The functions return data (an RGB array, a :class:`~matplotlib.figure.Figure`) and never show
anything. Figures are made without ``pyplot``, so the user's matplotlib backend is never
touched and nothing stays registered in pyplot's figure manager.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from lvlm_heat.metrics.curves import Curve

if TYPE_CHECKING:
    from lvlm_heat.record import Explanation


def heatmap_overlay(image: Image.Image, saliency: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """``(H, W, 3)`` uint8: ``saliency`` (``(H, W)``, any range) in colour over ``image``."""
    span = float(saliency.max() - saliency.min())
    scaled = (saliency - saliency.min()) / span if span > 0 else np.zeros_like(saliency)
    colours = matplotlib.colormaps[colormap](scaled)[..., :3]
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return ((1 - alpha) * base + alpha * colours).clip(0, 1).__mul__(255).round().astype(np.uint8)


def _title(explanation: Explanation, width: int = 70) -> str:
    selected = ", ".join(explanation.selected_tokens) or "none"
    lines = [f"Q: {explanation.question}", f"A: {explanation.answer}", f"explained tokens: {selected}"]
    return "\n".join(textwrap.shorten(line, width) for line in lines)


def overlay_figure(image: Image.Image, explanation: Explanation) -> Figure:
    """The image and its heatmap side by side, titled with question, answer and tokens."""
    figure = Figure(figsize=(8, 4.6))
    axes = figure.subplots(1, 2)
    axes[0].imshow(image.convert("RGB"))
    axes[0].set_title("image")
    axes[1].imshow(heatmap_overlay(image, explanation.saliency))
    axes[1].set_title("saliency (red = important)")
    for axis in axes:
        axis.axis("off")
    figure.suptitle(_title(explanation), fontsize=9)
    figure.tight_layout()
    return figure


def curves_figure(deletion: Curve, insertion: Curve) -> Figure:
    """Normalised deletion and insertion curves with their AUC."""
    figure = Figure(figsize=(5, 3.6))
    axis = figure.subplots()
    for name, curve, colour in (("deletion", deletion, "tab:red"), ("insertion", insertion, "tab:blue")):
        axis.plot(curve.fractions.numpy(), curve.normalized.numpy(), color=colour, label=f"{name} AUC {curve.auc:.3f}")
    axis.set_xlabel("fraction of mask cells removed / inserted (most important first)")
    axis.set_ylabel("normalised probability")
    axis.set_xlim(0, 1)
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure
