"""The loss terms of docs/method.md, 'Loss', as small pure functions.

The full objective of one iteration ``i`` is::

    loss = L_del - L_ins + L1 * l1(M) + L3 * bilateral_tv(M, I) + L2 * exp(-gamma * i) * l2(M)

with ``L_del`` and ``L_ins`` the integrated scores of the deletion and insertion
composites (:mod:`lvlm_heat.explainer`). Masks are ``(1, 1, h, w)``, 1 = keep.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def l1_term(mask: Tensor) -> Tensor:
    """Sparsity: ``mean(|1 - M|)``, small when little is marked important."""
    return (1 - mask).abs().mean()


def total_variation(mask: Tensor, weight_y: Tensor | None = None, weight_x: Tensor | None = None) -> Tensor:
    """``mean`` of squared differences of vertical and horizontal neighbours, optionally weighted.

    Args:
        mask: ``(N, 1, h, w)``.
        weight_y: ``(N, 1, h - 1, w)`` weights of the vertical differences, or ``None``.
        weight_x: ``(N, 1, h, w - 1)`` weights of the horizontal differences, or ``None``.
    """
    dy = (mask[..., 1:, :] - mask[..., :-1, :]) ** 2
    dx = (mask[..., :, 1:] - mask[..., :, :-1]) ** 2
    if weight_y is not None:
        dy, dx = dy * weight_y, dx * weight_x
    parts = [d.mean() for d in (dy, dx) if d.numel()]
    return sum(parts) if parts else mask.new_zeros(())


def edge_weights(image: Tensor, sigma: float = 0.01) -> tuple[Tensor, Tensor]:
    """Bilateral weights ``exp(-(I_p - I_q)^2 / sigma)`` between neighbouring pixels.

    Args:
        image: ``(1, C, H, W)`` image in the normalised space where the mask is applied; the
            difference is averaged over channels.

    Returns:
        Vertical ``(1, 1, H - 1, W)`` and horizontal ``(1, 1, H, W - 1)`` weights.
    """
    dy = (image[..., 1:, :] - image[..., :-1, :]).mean(1, keepdim=True)
    dx = (image[..., :, 1:] - image[..., :, :-1]).mean(1, keepdim=True)
    return torch.exp(-(dy**2) / sigma), torch.exp(-(dx**2) / sigma)


def bilateral_tv(mask: Tensor, upsampled: Tensor, weights: tuple[Tensor, Tensor]) -> Tensor:
    """Bilateral TV: ``(TV(M) + TV_w(M~)) / 2``, the second weighted by image edges.

    A mask edge costs little where the image has an edge too.

    Args:
        mask: ``(1, 1, h, w)`` mask cells.
        upsampled: ``(1, 1, H, W)`` the mask where it is applied.
        weights: :func:`edge_weights` of the image at ``(H, W)``.
    """
    return (total_variation(mask) + total_variation(upsampled, *weights)) / 2


def temporal_smoothness(masks: Tensor) -> Tensor:
    """``mean((M_t+1 - M_t)^2)`` over consecutive frames' masks ``(S, F, h, w)`` (frames along dim 1): small when
    the marked region changes slowly over the clip.

    Example:
        >>> temporal_smoothness(torch.tensor([[[[1.0]], [[0.0]], [[0.0]]]]))
        tensor(0.5000)
    """
    return ((masks[:, 1:] - masks[:, :-1]) ** 2).mean()


def gnc_weight(iteration: int, gamma: float) -> float:
    """Graduated non-convexity: ``exp(-gamma * i)``, the fading weight of the L2 term."""
    return math.exp(-gamma * iteration)


def l2_term(mask: Tensor) -> Tensor:
    """``sum((1 - M)^2)``: strongly convex, keeps early iterations smooth."""
    return ((1 - mask) ** 2).sum()
