"""What the demo sets and the instruments score alike: the answer word's probability on edited images, and
where a map's peak lies."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from lvlm_heat.metrics.functional import box_mass, pointing_hit

Box = tuple[int, int, int, int]


@torch.no_grad()
def word_probabilities(adapter, pair: Any, images: list[Image.Image]) -> list[float]:
    """Probability of the answer word (the last answer token) on each of ``images``."""
    answer = adapter.encode_answer(pair.qa.answer)
    probabilities = []
    for image in images:
        prepared = adapter.prepare(pair.image, image, pair.qa.question, answer)
        log_probs = adapter.answer_log_probs(prepared, {k: v[None] for k, v in prepared.baseline.items()})
        probabilities.append(float(log_probs[0, -1].exp()))
    return probabilities


def placement(saliency: np.ndarray, target: Box, others: tuple[Box, ...]) -> dict[str, Any]:
    """Where a map's peak lies, scored alike on the demo sets and the instruments: on the queried object
    (``on_target``), else on another object (``on_other``), and the map's mass in the queried box."""
    saliency = torch.from_numpy(saliency)
    on_target = pointing_hit(saliency, target)
    return {"on_target": on_target, "on_other": not on_target and any(pointing_hit(saliency, b) for b in others),
            "box_mass": box_mass(saliency, target)}
