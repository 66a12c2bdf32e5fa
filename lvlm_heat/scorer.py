"""Composites of one pair, scored by the model: the one place the method calls the model on images.

A mask ``W`` (``(N, 1, h, w)`` cells over the original image, 1 = keep; ``(N, K, h, w)``, a channel per image,
for a question about ``K`` images or a clip's frames) becomes the composites
``phi(I, B, W) = I W + B (1 - W)`` (deletion) or ``phi(B, I, W)`` (insertion) in the model's own
preprocessed pixel space: the adapter projects the mask through the processor's geometry
(:func:`~lvlm_heat.adapters.base.project_masks`, each image through its own) and
:func:`~lvlm_heat.adapters.base.blend` mixes the processed image and baseline. The model then gives the
log-probability of every answer token under teacher forcing. :class:`CompositeScorer` does this in
chunks of ``batch_size`` composites (halved for good after an out-of-memory error) for everything that
scores composites: the selection's and the warm start's sweeps of regions, the optimisation's
integrated-gradient points, the deletion and insertion curves, occlusion maps, the batch-size probe
and the benchmark.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lvlm_heat.adapters.base import Adapter, PreparedPair, blend, project_masks
from lvlm_heat.geometry import mask_grid_shape
from lvlm_heat.metrics.curves import Curve, perturbation_curve

log = logging.getLogger(__name__)


def in_chunks(count: int, batch_size: int, run: Callable[[int, int], None]) -> int:
    """Call ``run(first, last)`` over ``[0, count)`` in chunks of ``batch_size``; return the batch size used.

    On a CUDA out-of-memory error the chunk size is halved (and stays halved), with a warning, and the
    failed chunk is retried.
    """
    first = 0
    while first < count:
        last = min(first + batch_size, count)
        try:
            run(first, last)
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning("out of memory: retrying with batch_size %d", batch_size)
            continue
        first = last
    return batch_size


def sweep_masks(cells: tuple[int, int], windows: int, side: float = 0.5, images: int = 1) -> Tensor:
    """Keep-masks of a sweep of regions: ``(images * windows ** 2, images, h, w)``, 0 on one region of one image
    each (image after image), 1 on every other image.

    Regions are ``side`` of the mask's side in each direction, at ``windows`` evenly spaced offsets.
    With half-side regions neighbouring regions overlap and any object up to a quarter of the image
    lies whole in one.

    Example:
        >>> sweep_masks((4, 4), 2)[:, 0].tolist()[0]
        [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
        >>> sweep_masks((4, 4), 2, images=2).shape, sweep_masks((4, 4), 2, images=2)[4, 0].min().item()
        (torch.Size([8, 2, 4, 4]), 1.0)
    """
    rows, cols = cells
    height, width = max(1, round(rows * side)), max(1, round(cols * side))
    tops = torch.linspace(0, rows - height, windows).round().long().tolist() if windows > 1 else [0]
    lefts = torch.linspace(0, cols - width, windows).round().long().tolist() if windows > 1 else [0]
    regions = [(t, v) for t in tops for v in lefts]
    masks = torch.ones(images * len(regions), images, rows, cols)
    for image in range(images):
        for k, (top, left) in enumerate(regions):
            masks[image * len(regions) + k, image, top : top + height, left : left + width] = 0
    return masks


@dataclass(frozen=True)
class Sweep:
    """Regions replaced by the baseline one at a time.

    Attributes:
        keep: ``(K, images, h, w)`` keep-masks on the CPU, 0 on region ``k``.
        log_probs: ``(K, T)`` log-probability of every answer token with region ``k`` replaced.
    """

    keep: Tensor
    log_probs: Tensor


class CompositeScorer:
    """Scores the composites of one prepared pair.

    Args:
        adapter: The model behind its adapter.
        inputs: The pair's processed image, baseline and text (:meth:`Adapter.prepare`).
        mask_size: Cells of the mask on the image's long side (the grid sweeps are drawn on).
        batch_size: Composites per forward pass.
    """

    def __init__(self, adapter: Adapter, inputs: PreparedPair, mask_size: int, batch_size: int) -> None:
        self.adapter, self.inputs, self.batch_size = adapter, inputs, batch_size
        self.grid = mask_grid_shape(inputs.image_size, mask_size)
        """``(h, w)`` cells of the mask, on every image alike (the first image's shape)."""
        self.images = inputs.images
        """Images of the pair: the mask's channels."""
        self.passes = 0
        """Composites scored so far (what a cost is counted in)."""
        self._sweeps: dict[tuple[int, float], Sweep] = {}

    def in_chunks(self, count: int, run: Callable[[int, int], None]) -> None:
        """:func:`in_chunks` at this scorer's batch size, which stays halved after an out-of-memory error."""
        self.batch_size = in_chunks(count, self.batch_size, run)

    def composites(self, masks: Tensor, insertion: bool | Tensor) -> dict[str, Tensor]:
        """``(N, ...)`` composites per pixel tensor for ``(N, images, h, w)`` masks: deletion, insertion, or per
        composite as ``insertion`` ``(N,)`` says (one projection of the masks serves both)."""
        weights = project_masks(self.adapter, masks, self.inputs)
        if isinstance(insertion, bool):
            return blend(self.inputs, weights, insertion)
        deleted = blend(self.inputs, weights, insertion=False)
        inserted = blend(self.inputs, weights, insertion=True)
        return {key: torch.where(insertion.view(-1, *[1] * (value.dim() - 1)), inserted[key], value)
                for key, value in deleted.items()}

    def log_probs(self, pixels: dict[str, Tensor]) -> Tensor:
        """``(N, T)`` log-probability of every answer token for ``N`` composites (gradients flow)."""
        self.passes += next(iter(pixels.values())).shape[0]
        return self.adapter.answer_log_probs(self.inputs, pixels)

    @torch.no_grad()
    def token_log_probs(self, keep: Tensor, insertion: bool = False) -> Tensor:
        """``(N, T)`` log-probability of every answer token for ``(N, 1, h, w)`` keep-masks, in chunks, on the CPU."""
        keep = keep.to(self.adapter.device)
        out = torch.zeros(len(keep), self.inputs.answer_ids.numel())

        def run(first: int, last: int) -> None:
            out[first:last] = self.log_probs(self.composites(keep[first:last], insertion)).float().cpu()

        self.in_chunks(len(keep), run)
        return out

    @torch.no_grad()
    def mean_probs(self, keep: Tensor, insertion: bool, tokens: Tensor) -> Tensor:
        """``(N,)`` mean probability of ``tokens`` (``(T,)`` bool) for ``(N, 1, h, w)`` keep-masks: a curve's points."""
        out = torch.zeros(keep.shape[0])
        tokens = tokens.to(self.inputs.answer_ids.device)

        def run(first: int, last: int) -> None:
            log_probs = self.log_probs(self.composites(keep[first:last], insertion))[:, tokens]
            out[first:last] = log_probs.float().exp().mean(-1).cpu()

        self.in_chunks(keep.shape[0], run)
        return out

    def curves(self, mask: Tensor, tokens: Tensor, p_image: float, p_baseline: float,
               steps: int) -> tuple[Curve, Curve]:
        """The deletion and insertion curves of a ``(1, 1, h, w)`` mask (low = important) on ``tokens``."""

        def score(keep: Tensor, insertion: bool) -> Tensor:
            return self.mean_probs(keep, insertion, tokens)

        return tuple(perturbation_curve(score, mask, p_image, p_baseline, flag, steps) for flag in (False, True))

    def sweep(self, windows: int, side: float) -> Sweep:
        """A sweep of ``windows x windows`` regions ``side`` of the image's side (:func:`sweep_masks`), each
        replaced by the baseline; run once per pair and geometry, then reused."""
        key = (windows, float(side))
        if key not in self._sweeps:
            keep = sweep_masks(self.grid, windows, side, self.images)
            self._sweeps[key] = Sweep(keep, self.token_log_probs(keep))
        return self._sweeps[key]

    def has_swept(self, windows: int, side: float) -> bool:
        """Whether :meth:`sweep` already ran this sweep (it then costs nothing)."""
        return (windows, float(side)) in self._sweeps
