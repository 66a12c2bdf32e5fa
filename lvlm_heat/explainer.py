"""The mask optimiser: one image-question pair as a LightningModule (METHOD.md sections 4-7).

Reading order, as the algorithm runs:

1. the mask ``M`` (``(1, 1, h, w)`` cells over the original image, 1 = keep) is the module's
   only parameter; the frozen model lives in the adapter, never registered as a submodule;
2. one ``training_step`` is one iteration: ``ig_iter`` points ``t_k M`` along the integration
   path give deletion composites ``phi(I, B, t_k M~)`` and insertion composites
   ``phi(B, I, t_k M~)``, evaluated in batches, noised, and scored by the adapter;
3. ``L_del - L_ins`` is back-propagated chunk by chunk (memory stays bounded), expressed in
   units of its largest gradient (so the regulariser weights are relative to it), then the
   L1, bilateral-TV and GNC-decayed L2 terms are added and :class:`IGOSNesterov` steps;
4. ``test_step`` draws the deletion and insertion curves of the final mask.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from lvlm_heat.adapters.base import Adapter, PreparedPair, blend
from lvlm_heat.config import OptimConfig
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.geometry import mask_grid_shape, sample_mask
from lvlm_heat.losses import bilateral_tv, edge_weights, gnc_weight, l1_term, l2_term
from lvlm_heat.metrics.curves import Curve, perturbation_curve
from lvlm_heat.optim import IGOSNesterov

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


class MaskExplainer(LightningModule):
    """Optimises the perturbation mask of one image-question-answer triple.

    Args:
        adapter: The frozen model behind its adapter.
        prepared: The pair's processed image, baseline and text.
        selected: ``(T,)`` bool, the answer tokens whose likelihood is explained.
        config: Optimisation settings.
        p_image: Mean probability of the selected tokens on the image (curve normalisation).
        p_baseline: The same on the baseline.
    """

    def __init__(
        self,
        adapter: Adapter,
        prepared: PreparedPair,
        selected: Tensor,
        config: OptimConfig,
        p_image: float,
        p_baseline: float,
    ) -> None:
        super().__init__()
        self.adapter, self.prepared, self.config = adapter, prepared, config
        self.selected = selected.to(prepared.answer_ids.device)
        self.p_image, self.p_baseline = p_image, p_baseline
        # one mask, or the iGOS++ pair (deletion mask, insertion mask): (masks, 1, h, w), 1 = keep
        self.mask = nn.Parameter(torch.ones(config.masks, 1, *mask_grid_shape(prepared.image_size, config.mask_size)))
        self.automatic_optimization = False
        self.batch_size = config.batch_size
        self.score_scale: float | None = None
        self.history: list[dict[str, float]] = []
        self.deletion: Curve | None = None
        self.insertion: Curve | None = None
        if prepared.guide is None:
            raise LvlmHeatError(
                f"{type(adapter).__name__} left PreparedPair.guide unset: its prepare (or geometry) must give an "
                "image-shaped view of the processed image and its ViewWindow (README, 'Add your own model')"
            )
        guide, self.guide_window = prepared.guide
        self.edges = edge_weights(guide.float(), config.tv_sigma)

    def final_mask(self) -> Tensor:
        """``(1, 1, h, w)``: the mask the saliency and the curves are drawn from (the product of the
        deletion and insertion masks in the two-mask variant)."""
        return self.mask.prod(0, keepdim=True)

    def score_terms(self) -> list[tuple[Tensor, bool]]:
        """The ``(1, 1, h, w)`` masks the integrated scores are taken along, each with its insertion flag.

        One mask ``M``: ``L_del(M) - L_ins(M)``. Two masks (iGOS++): the deletion mask ``D`` and the
        insertion mask ``N`` each in its own game and their product in both,
        ``L_del(D) + L_del(D N) - L_ins(N) - L_ins(D N)``.
        """
        if self.config.masks == 1:
            return [(self.mask, False), (self.mask, True)]
        product = self.final_mask()
        return [(self.mask[:1], False), (product, False), (self.mask[1:], True), (product, True)]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return IGOSNesterov([self.mask], step_size=self.config.step_size, lr=self.config.lr, momentum=self.config.momentum)

    # -- scoring ----------------------------------------------------------------------------
    def score(self, pixels: dict[str, Tensor]) -> Tensor:
        """``(N,)`` sum of the selected tokens' log-probabilities: ``score(X)`` of section 3."""
        return self.adapter.answer_log_probs(self.prepared, pixels)[:, self.selected].sum(-1)

    def composites(self, masks: Tensor, insertion: bool) -> dict[str, Tensor]:
        """``(N, ...)`` deletion or insertion composites for ``(N, 1, h, w)`` masks."""
        return blend(self.prepared, self.adapter.project_mask(masks, self.prepared), insertion)

    def _noise(self, pixels: dict[str, Tensor], iteration: int, first: int) -> dict[str, Tensor]:
        """Add noise seeded per (iteration, composite): the same whatever the batch size."""
        if self.config.noise == 0:
            return pixels
        out = {}
        count = next(iter(pixels.values())).shape[0]
        generator = torch.Generator(device=self.mask.device)
        for slot, (key, value) in enumerate(pixels.items()):
            draws = []
            for j in range(count):
                generator.manual_seed(((self.config.seed * 1009 + iteration) * 100_003 + first + j) * 17 + slot)
                draws.append(torch.randn(value.shape[1:], generator=generator, device=value.device))
            out[key] = value + self.config.noise * torch.stack(draws)
        return out

    def _in_chunks(self, count: int, run: Callable[[int, int], None]) -> None:
        """:func:`in_chunks` with this pair's batch size, which stays halved after an out-of-memory error."""
        self.batch_size = in_chunks(count, self.batch_size, run)

    # -- one iteration ----------------------------------------------------------------------
    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        config, mask, iteration = self.config, self.mask, batch_idx
        optimizer = self.optimizers()
        optimizer.zero_grad()
        n = config.ig_iter
        path = torch.arange(1, n + 1, device=mask.device, dtype=mask.dtype) / n
        # n composites per score term, term after term: job j is path point j % n of term j // n
        insertion = torch.tensor([flag for _, flag in self.score_terms() for _ in range(n)], device=mask.device)
        scores = torch.zeros(len(insertion))

        def run(first: int, last: int) -> None:
            games = self.score_terms()  # built anew for each chunk: each backward frees its graph
            jobs = torch.arange(first, last, device=mask.device)
            masks = torch.cat([games[j // n][0] for j in range(first, last)])  # (chunk, 1, h, w)
            weights = self.adapter.project_mask(path[jobs % n].view(-1, 1, 1, 1) * masks, self.prepared)
            deleted = blend(self.prepared, weights, insertion=False)
            inserted = blend(self.prepared, weights, insertion=True)
            flags = insertion[jobs]
            pixels = {
                key: torch.where(flags.view(-1, *[1] * (value.dim() - 1)), inserted[key], value)
                for key, value in deleted.items()
            }
            chunk_scores = self.score(self._noise(pixels, iteration, first))
            sign = 1.0 - 2.0 * flags.to(chunk_scores.dtype)
            self.manual_backward((sign * chunk_scores).sum() / n)
            scores[first:last] = chunk_scores.detach().float().cpu()

        self._in_chunks(len(insertion), run)
        flags = insertion.cpu()
        totals = {False: scores[~flags].sum().item() / n, True: scores[flags].sum().item() / n}
        if config.relative_weights:  # units of the largest score gradient seen (the first, unless saturated)
            self.score_scale = max(self.score_scale or 0.0, mask.grad.abs().max().item()) or 1.0
        else:
            self.score_scale = 1.0
        mask.grad.div_(self.score_scale)

        upsampled = sample_mask(mask, self.guide_window, self.prepared.image_size)
        terms = {  # on every mask of the variant
            "l1": l1_term(mask),
            "tv": bilateral_tv(mask, upsampled, self.edges),
            "l2": l2_term(mask),
        }
        weight = gnc_weight(iteration, config.gamma)
        regulariser = config.l1 * terms["l1"] + config.l3 * terms["tv"] + config.l2 * weight * terms["l2"]
        self.manual_backward(regulariser)
        total = (totals[False] - totals[True]) / self.score_scale + regulariser.item()
        if not (math.isfinite(total) and torch.isfinite(mask.grad).all()):
            hint = ": fp16 overflows easily, try --precision bf16 or fp32" if self.adapter.dtype == torch.float16 else ""
            raise FloatingPointError(f"the loss or its gradient is not finite at iteration {iteration}{hint}")
        optimizer.step()

        record = {
            "deletion": totals[False],
            "insertion": totals[True],
            **{name: float(value.detach()) for name, value in terms.items()},
            "l2_weight": weight,
            "total": total,
            "mask_mean": float(mask.detach().mean()),
        }
        self.history.append(record)
        self.log_dict({f"loss/{k}": v for k, v in record.items()}, on_step=True, on_epoch=False, batch_size=1)
        return torch.tensor(total)

    # -- curves of the final mask -----------------------------------------------------------
    @torch.no_grad()
    def curve_scores(self, keep: Tensor, insertion: bool) -> Tensor:
        """``(N,)`` mean probability of the selected tokens for ``(N, 1, h, w)`` keep-masks."""
        out = torch.zeros(keep.shape[0])

        def run(first: int, last: int) -> None:
            pixels = self.composites(keep[first:last], insertion)
            log_probs = self.adapter.answer_log_probs(self.prepared, pixels)[:, self.selected]
            out[first:last] = log_probs.float().exp().mean(-1).cpu()

        self._in_chunks(keep.shape[0], run)
        return out

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        mask = self.final_mask().detach()
        steps = self.config.curve_steps
        self.deletion = perturbation_curve(self.curve_scores, mask, self.p_image, self.p_baseline, False, steps)
        self.insertion = perturbation_curve(self.curve_scores, mask, self.p_image, self.p_baseline, True, steps)
        self.log_dict(
            {"auc/deletion": self.deletion.auc, "auc/insertion": self.insertion.auc}, on_step=False, on_epoch=True,
            batch_size=1,
        )
