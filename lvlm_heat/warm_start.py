"""Where the mask starts: dipped where removing a region of the image costs the explained tokens.

The paper starts the mask at 1 everywhere, and a few small steps from there often settle on whatever
the first gradients favour. The warm start asks the model first: a sweep of square regions, each
replaced by the baseline in turn (forward passes only), measures how many nats each region costs each
group of explained tokens (the joint selection, and each word with a map of its own). The mask starts
at ``1 - depth x prior``, the prior of a group being

    prior = t_f m_f^p + (1 - t_f) t_c m_c^p

- ``m_f``: the fine sweep's map, each cell's *mean* cost over the regions covering it, min-max scaled.
  Cells of the object lie in every region whose removal costs the tokens, cells around it in some of
  them only; the power ``p`` keeps the order and narrows that halo.
- ``t_f = min(1, largest fine cost / trust)``: a region costing a whole nat is trusted fully.
- ``m_c``, ``t_c``: the same for the coarse sweep (fewer, larger regions), with each cell's *largest*
  cost over its regions: its few regions cover the corners once and the centre up to four times, so a
  mean would put the peak in the corner of the region holding the object, where the largest cost marks
  that region evenly and leaves the placing to the optimisation. It runs only where some group trusts
  the fine sweep less than fully (``t_f < 1``: an object no fine region holds whole), and costs nothing
  when the ``evidence`` selection already ran the same sweep.

A sweep whose regions all cost the same (evidence spread over the image) marks nothing. Every number
is a field of :class:`~lvlm_heat.config.WarmStartConfig`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lvlm_heat.config import WarmStartConfig
from lvlm_heat.prepare import Prepared
from lvlm_heat.scorer import Sweep


def initial_mask(prepared: Prepared, config: WarmStartConfig) -> Tensor | None:
    """The ``(G, images, h, w)`` starting mask of each group of explained tokens (the joint map's, then each
    word's), or ``None`` for the paper's start (``depth`` 0). With several images the sweeps cover each image in
    turn, and one scaling spans them all."""
    if config.depth == 0:
        return None
    return 1 - config.depth * prior(prepared, config)


def prior(prepared: Prepared, config: WarmStartConfig) -> Tensor:
    """``(G, images, h, w)`` in [0, 1]: where the sweeps found each group's evidence (see the module docstring)."""
    scorer, groups = prepared.scorer, prepared.groups.float()
    reference = prepared.log_probs[0] @ groups.T  # (G,) each group's log-probability on the image

    def costs(sweep: Sweep) -> Tensor:  # (K, G) nats each region costs each group
        return reference[None] - sweep.log_probs @ groups.T

    fine = scorer.sweep(config.windows, config.side)
    fine_costs = costs(fine)
    fine_maps, fine_trust = zip(*(region_map(fine.keep, fine_costs[:, g], config.trust) for g in range(len(groups))))
    total = torch.stack([trust * shape**config.power for shape, trust in zip(fine_maps, fine_trust)])
    if config.fallback and min(fine_trust) < 1:
        coarse = scorer.sweep(config.fallback_windows, config.fallback_side)
        coarse_costs = costs(coarse)
        for g, trust in enumerate(fine_trust):
            if trust < 1:
                shape, coarse_trust = region_map(coarse.keep, coarse_costs[:, g], config.trust, largest=True)
                total[g] = (1 - trust) * coarse_trust * shape**config.power + total[g]
    return total


def region_map(keep: Tensor, costs: Tensor, trust: float, largest: bool = False) -> tuple[Tensor, float]:
    """One sweep's ``(images, h, w)`` map and the sweep's trust.

    Each cell gets the mean (or ``largest``) cost over the regions covering it; the map is min-max scaled
    (zeros when every cell gets the same) and the trust is ``min(1, largest cost / trust)``.

    Args:
        keep: ``(K, images, h, w)`` keep-masks of the sweep's regions.
        costs: ``(K,)`` what replacing each region costs (nats); gains count as 0.
        trust: The cost trusted fully.
        largest: Take each cell's largest cost instead of the mean (the coarse sweep).

    Example:
        >>> from lvlm_heat.scorer import sweep_masks
        >>> keep = sweep_masks((4, 4), 3)  # nine 2 x 2 regions; only the top-left one matters
        >>> shape, trusted = region_map(keep, torch.tensor([3.0] + [0.0] * 8), 1.0)
        >>> shape[0, :2].tolist(), trusted
        ([[1.0, 0.5, 0.0, 0.0], [0.5, 0.25, 0.0, 0.0]], 1.0)
        >>> region_map(keep, torch.tensor([0.5] + [0.0] * 8), 1.0)[1]  # half a nat: half trusted
        0.5
    """
    costs = costs.float().clamp_min(0)
    removed = 1 - keep.float()
    weighted = costs.view(-1, 1, 1, 1) * removed
    cells = weighted.amax(0) if largest else weighted.sum(0) / removed.sum(0).clamp_min(1)
    spread = cells.max() - cells.min()
    if spread <= 0:
        return torch.zeros_like(cells), 0.0
    return (cells - cells.min()) / spread, min(1.0, float(costs.max()) / trust)
