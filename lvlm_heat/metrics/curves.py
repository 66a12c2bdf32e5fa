"""Deletion and insertion curves (docs/method.md, 'Deletion and insertion curves'), apart from their AUC.

Cells are ranked from most to least important (ascending mask value, ties in raster
order) and removed in ``K`` steps of ``floor(N / K)`` cells, the last step taking the
rest. Deletion replaces removed cells of the image by the baseline; insertion starts
from the baseline and puts the image back. Each point is the mean probability of the
selected tokens, normalised so the image scores 1 and the baseline 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lvlm_heat.metrics.functional import trapezoid_auc

# score_fn(keep_masks, insertion) -> (N,) mean probability of the selected tokens, where keep_masks
# is (N, 1, h, w) with 1 = cell untouched, 0 = cell removed (taken from the other image).
ScoreFn = Callable[[Tensor, bool], Tensor]


@dataclass
class Curve:
    """One perturbation curve.

    Attributes:
        fractions: ``(K + 1,)`` fraction of cells removed (deletion) or inserted (insertion).
        probs: ``(K + 1,)`` raw mean probability of the selected tokens.
        normalized: ``(K + 1,)`` ``(p - p(B)) / (p(I) - p(B))``.
    """

    fractions: Tensor
    probs: Tensor
    normalized: Tensor

    @property
    def auc(self) -> float:
        return float(trapezoid_auc(self.fractions, self.normalized))

    def leaves_unit_range(self, margin: float) -> bool:
        """Whether a normalised point lies below ``-margin`` or above ``1 + margin``.

        Example:
            >>> x = torch.tensor([0.0, 0.5, 1.0])
            >>> Curve(x, x, torch.tensor([1.0, -0.3, 0.0])).leaves_unit_range(0.1)
            True
            >>> Curve(x, x, torch.tensor([1.0, 1.05, 0.0])).leaves_unit_range(0.1)
            False
        """
        return bool((self.normalized < -margin).any() or (self.normalized > 1 + margin).any())

    def to_dict(self) -> dict[str, list[float]]:
        """The curve as JSON lists (what ``result.json`` holds)."""
        return {"fractions": self.fractions.tolist(), "probs": self.probs.tolist(),
                "normalized": self.normalized.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float | None]]) -> Curve:
        """The inverse of :meth:`to_dict` (float32, as drawn; a ``null`` point, e.g. of an undefined
        normalisation written as strict JSON, is NaN).

        Example:
            >>> curve = Curve(torch.tensor([0.0, 1.0]), torch.tensor([0.9, 0.1]), torch.tensor([1.0, 0.0]))
            >>> Curve.from_dict(curve.to_dict()).to_dict() == curve.to_dict()
            True
        """
        def tensor(values: list[float | None]) -> Tensor:
            return torch.tensor([float("nan") if v is None else v for v in values], dtype=torch.float32)

        return cls(tensor(data["fractions"]), tensor(data["probs"]), tensor(data["normalized"]))


def removal_masks(mask: Tensor, steps: int = 50) -> tuple[Tensor, Tensor]:
    """The keep-masks of a perturbation curve.

    Args:
        mask: ``(1, 1, h, w)`` mask, low = important; ``(1, K, h, w)`` for ``K`` images, whose cells are ranked
            all together.
        steps: ``K``; fewer when the mask has fewer than ``K`` cells.

    Returns:
        ``(K + 1, *mask.shape[1:])`` keep-masks (step 0 keeps everything, step K removes everything)
        and ``(K + 1,)`` fractions of cells removed.

    Example:
        >>> keep, fractions = removal_masks(torch.tensor([[[[0.9, 0.1], [0.5, 0.1]]]]), steps=2)
        >>> keep[:, 0].tolist()
        [[[1.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]
        >>> fractions.tolist()
        [0.0, 0.5, 1.0]
    """
    cells = mask.numel()
    steps = max(1, min(steps, cells))
    order = torch.argsort(mask.flatten().float(), stable=True)
    per_step = cells // steps
    counts = torch.tensor([min(k * per_step, cells) if k < steps else cells for k in range(steps + 1)])
    rank = torch.empty(cells, dtype=torch.long, device=mask.device)
    rank[order] = torch.arange(cells, device=mask.device)
    keep = (rank[None, :] >= counts.to(mask.device)[:, None]).to(mask.dtype)
    return keep.view(steps + 1, *mask.shape[1:]), counts.to(torch.float32) / cells


@torch.no_grad()
def perturbation_curve(
    score_fn: ScoreFn, mask: Tensor, p_image: float, p_baseline: float, insertion: bool, steps: int = 50
) -> Curve:
    """Deletion (``insertion=False``) or insertion curve of ``mask`` under ``score_fn``.

    The end points are the image and the baseline themselves, whose probabilities
    ``p_image`` and ``p_baseline`` are known: only the inner points are evaluated.
    """
    keep, fractions = removal_masks(mask, steps)
    start, end = (p_baseline, p_image) if insertion else (p_image, p_baseline)
    inner = score_fn(keep[1:-1], insertion).float().cpu() if len(keep) > 2 else torch.zeros(0)
    probs = torch.cat([torch.tensor([start]), inner, torch.tensor([end])])
    gap = p_image - p_baseline
    normalized = (probs - p_baseline) / gap if gap != 0 else torch.full_like(probs, float("nan"))
    return Curve(fractions, probs, normalized)


def auc_scalars(curves: list[tuple[Curve, Curve]]) -> dict[str, float]:
    """The AUCs of a map's curves under the names they are logged by (TensorBoard): ``auc/deletion`` and
    ``auc/insertion`` of the joint map (the first pair), ``auc/word<i>/deletion`` and ``.../insertion`` of each
    word's."""
    aucs = {"auc/deletion": curves[0][0].auc, "auc/insertion": curves[0][1].auc}
    for w, (deletion, insertion) in enumerate(curves[1:]):
        aucs.update({f"auc/word{w}/deletion": deletion.auc, f"auc/word{w}/insertion": insertion.auc})
    return aucs
