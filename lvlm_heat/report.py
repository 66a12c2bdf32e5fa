"""What a user looks at: the heatmap overlay, the curve plot and ``result.json``.

The drawing functions return data (an RGB array, a matplotlib figure) and never show
anything; :func:`write_outputs` saves them next to ``saliency.npy`` and an atomically
written ``result.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from lvlm_heat.metrics.curves import Curve  # noqa: E402

if TYPE_CHECKING:
    from lvlm_heat.pipeline import Explanation


def heatmap_overlay(image: Image.Image, saliency: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """``(H, W, 3)`` uint8: ``saliency`` (``(H, W)``, any range) in colour over ``image``."""
    span = float(saliency.max() - saliency.min())
    scaled = (saliency - saliency.min()) / span if span > 0 else np.zeros_like(saliency)
    colours = matplotlib.colormaps[colormap](scaled)[..., :3]
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return ((1 - alpha) * base + alpha * colours).clip(0, 1).__mul__(255).round().astype(np.uint8)


def _title(explanation: Explanation, width: int = 70) -> str:
    import textwrap

    selected = ", ".join(t.text.strip() for t in explanation.tokens if t.selected) or "none"
    lines = [f"Q: {explanation.question}", f"A: {explanation.answer}", f"explained tokens: {selected}"]
    return "\n".join(textwrap.shorten(line, width) for line in lines)


def overlay_figure(image: Image.Image, explanation: Explanation) -> Figure:
    """The image and its heatmap side by side, titled with question, answer and tokens."""
    figure, axes = plt.subplots(1, 2, figsize=(8, 4.6))
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
    figure, axis = plt.subplots(figsize=(5, 3.6))
    for name, curve, colour in (("deletion", deletion, "tab:red"), ("insertion", insertion, "tab:blue")):
        axis.plot(curve.fractions.numpy(), curve.normalized.numpy(), color=colour, label=f"{name} AUC {curve.auc:.3f}")
    axis.set_xlabel("fraction of mask cells removed / inserted (most important first)")
    axis.set_ylabel("normalised probability")
    axis.set_xlim(0, 1)
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that ``path`` is either absent or complete, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


def write_outputs(folder: Path, image: Image.Image, explanation: Explanation) -> None:
    """``saliency.npy``, ``overlay.png``, ``curves.png`` (when explained) and, last, ``result.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    if explanation.saliency is not None:
        np.save(folder / "saliency.npy", explanation.saliency.astype(np.float32))
        for name, figure in (("overlay.png", overlay_figure(image, explanation)), ("curves.png", curves_figure(explanation.deletion, explanation.insertion))):
            figure.savefig(folder / name, dpi=110)
            plt.close(figure)
    write_json_atomic(folder / "result.json", explanation.to_dict())
