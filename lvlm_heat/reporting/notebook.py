"""An :class:`~lvlm_heat.record.ExplanationRecord` in a notebook: as HTML, and as a matplotlib figure.

:func:`explanation_html` is what Jupyter shows for an explanation (the overlay as an embedded PNG,
the answer strip, the AUCs); :func:`explanation_figure` returns the overlay figure with its strip
(and the curves when there are any) for the user to show or save. Neither calls ``show`` nor
touches ``pyplot``.

The overlay needs the image: pass it, or it is opened from ``explanation.image_path``; without
either, the heatmap is shown on its own. The HTML comes from the package's ``explanation.html.j2``, whose
answer strip is the report's (the same macro, the same string). The record's own display methods call this
module, so it types the record ``Any`` rather than import it.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from lvlm_heat.reporting.strip import strip_view
from lvlm_heat.reporting.templates import number, render

EXPLANATION_TEMPLATE = "explanation.html.j2"


def _image_of(explanation: Any, image: Image.Image | None) -> Image.Image | None:
    if image is not None:
        return image.convert("RGB")
    own = getattr(explanation, "image", None)
    if isinstance(own, Image.Image):
        return own.convert("RGB")
    if explanation.image_path:
        from lvlm_heat.data import load_image
        from lvlm_heat.errors import LvlmHeatError

        try:
            return load_image(explanation.image_path)
        except LvlmHeatError:
            return None
    return None


def _canvas(explanation: Any, image: Image.Image | None) -> Image.Image:
    """What the heatmap is drawn over: the image, or a grey field of the saliency's size."""
    found = _image_of(explanation, image)
    if found is not None:
        return found
    height, width = explanation.saliency.shape
    return Image.new("RGB", (width, height), (128, 128, 128))


def _png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def explanation_html(explanation: Any, image: Image.Image | None = None, width: int = 360) -> str:
    """The explanation as one self-contained HTML block (for ``_repr_html_``).

    Args:
        explanation: The result of one pair.
        image: The image it explains (default: opened from ``explanation.image_path``).
        width: Width of the overlay in CSS pixels.

    Returns:
        HTML: question, answer strip, status, AUCs (each word's too with per-word maps), pointing hit and
        box mass when there is a box, and the heatmap over the image as an embedded PNG when there is one.
    """
    from lvlm_heat.reporting.figures import UNSTABLE, heatmap_overlay, scores

    rows = [("status", explanation.status.replace("_", " "))]
    if explanation.saliency is not None:
        rows += [("deletion AUC", number(explanation.deletion_auc)),
                 ("insertion AUC", number(explanation.insertion_auc)),
                 ("p(I) / p(B)", f"{number(explanation.p_image)} / {number(explanation.p_baseline)}")]
        if explanation.unstable:
            rows.append(("note", f"{UNSTABLE} (p(I) - p(B) below min_gap)"))
    if explanation.bbox is not None and explanation.saliency is not None:
        rows += [("pointing game", "hit" if explanation.pointing_hit else "miss"),
                 ("box mass", number(explanation.box_mass))]
    for word in explanation.words or []:
        rows.append((f"map of {word.word!r}", scores(word.deletion, word.insertion, word.unstable, digits=3)))
    if explanation.reference is not None:
        rows.append(("reference", f"{explanation.reference} (match: {explanation.answer_match or 'none'})"))
    overlay = None
    if explanation.saliency is not None:
        overlay = _png(heatmap_overlay(_canvas(explanation, image), explanation.saliency))
    return render(EXPLANATION_TEMPLATE, question=explanation.question, tokens=strip_view(explanation.tokens),
                  rows=rows, overlay=overlay, width=width)


def explanation_figure(explanation: Any, image: Image.Image | None = None) -> Figure:
    """The overlay figure (image, heatmap, answer strip) with the deletion and insertion curves beside it
    and, with per-word maps, a row of them.

    Returns:
        A :class:`~matplotlib.figure.Figure` (not registered with ``pyplot``; ``display(figure)`` or
        ``figure.savefig(...)`` it).
    """
    from lvlm_heat.reporting.figures import overlay_figure
    from lvlm_heat.reporting.strip import draw_strip, line_height_in, strip_lines

    if explanation.saliency is None:  # not grounded: the strip says why there is no map
        lines = strip_lines(explanation.tokens, 7.7)
        figure = Figure(figsize=(8, 0.9 + lines * line_height_in()))
        axis = figure.add_axes((0.02, 0.0, 0.96, 1 - 0.75 / figure.get_figheight()))
        draw_strip(axis, explanation.tokens)
        figure.suptitle(f"Q: {explanation.question}\nnot visually grounded: no heatmap", fontsize=9)
        return figure
    return overlay_figure(_canvas(explanation, image), explanation, curves=True, words=True)
