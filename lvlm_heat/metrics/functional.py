"""The maths of the metrics, as plain functions of tensors (the torchmetrics classes accumulate them).

- :func:`trapezoid_auc`: the area under a perturbation curve;
- :func:`peak`, :func:`pointing_hit` and :func:`box_mass`: plausibility of a heatmap against a ground-truth box.

Only torch is imported here.
"""

from __future__ import annotations

import torch
from torch import Tensor


def trapezoid_auc(fractions: Tensor, values: Tensor) -> Tensor:
    """Trapezoidal area under ``values`` over ``fractions`` (the last dimension).

    Example:
        >>> trapezoid_auc(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.5, 0.0]))
        tensor(0.5000)
    """
    widths = fractions[..., 1:] - fractions[..., :-1]
    return (widths * (values[..., 1:] + values[..., :-1]) / 2).sum(-1)


def _inside(shape: tuple[int, int], box: tuple[float, float, float, float], device) -> Tensor:
    height, width = shape
    left, top, right, bottom = box
    rows = torch.arange(height, device=device)[:, None] + 0.5
    cols = torch.arange(width, device=device)[None, :] + 0.5
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


def peak(saliency: Tensor) -> tuple[int, int]:
    """``(row, col)`` of the map's maximum: the pointing game's point.

    Where several pixels share the maximum (a plateau of the mask, a block or segment of an occlusion map),
    the one nearest their centroid is taken, so a flat-topped region points at its centre rather than at
    its first pixel in raster order, which would often lie on its edge.

    Example:
        >>> saliency = torch.zeros(5, 5); saliency[1:4, 0:3] = 1.0
        >>> peak(saliency)
        (2, 1)
    """
    rows, cols = torch.nonzero(saliency == saliency.max(), as_tuple=True)
    if len(rows) == 1:
        return int(rows[0]), int(cols[0])
    centre_y, centre_x = rows.double().mean(), cols.double().mean()
    k = int(((rows - centre_y) ** 2 + (cols - centre_x) ** 2).argmin())
    return int(rows[k]), int(cols[k])


def pointing_hit(saliency: Tensor, box: tuple[float, float, float, float]) -> bool:
    """Whether the :func:`peak` of ``saliency`` ``(H, W)`` lies in ``box`` ``(left, top, right, bottom)``.

    Example:
        >>> saliency = torch.zeros(4, 4); saliency[1, 2] = 1.0
        >>> pointing_hit(saliency, (2, 0, 4, 2)), pointing_hit(saliency, (0, 0, 2, 2))
        (True, False)
    """
    row, col = peak(saliency)
    left, top, right, bottom = box
    return bool(top <= row + 0.5 < bottom and left <= col + 0.5 < right)  # the pixel's centre, as box_mass counts


def box_mass(saliency: Tensor, box: tuple[float, float, float, float]) -> float:
    """Share of ``saliency.clamp(min=0)`` inside ``box`` (0 for an all-zero map).

    Example:
        >>> box_mass(torch.tensor([[1.0, 3.0], [0.0, 0.0]]), (1, 0, 2, 1))
        0.75
    """
    positive = saliency.clamp(min=0)
    total = positive.sum()
    return float(positive[_inside(saliency.shape, box, saliency.device)].sum() / total) if total > 0 else 0.0
