"""The mask optimiser: one image-question pair as a LightningModule (METHOD.md sections 4-7).

Reading order, as the algorithm runs:

1. the mask ``M`` (``(1, 1, h, w)`` cells over the original image, 1 = keep) is the module's
   only parameter; the frozen model lives in the adapter, never registered as a submodule.
   Per-word maps stack one more mask per word, ``(1 + W, 1, h, w)``: each is scored on its own
   tokens (the first on all selected tokens, the joint map), and all their composites share
   the batches;
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
        words: ``(W, T)`` bool, the tokens of each word that gets a map of its own (one mask per row,
            optimised alongside the joint one), or ``None``.
        word_probs: ``(p_image, p_baseline)`` of each word's tokens, for its curves.
        initial: ``(1 + W, 1, h, w)`` starting mask of the joint map and of each word's (``optim.warm_start``;
            the two-mask variant starts its deletion mask there), or ``None``: 1 everywhere.
    """

    def __init__(
        self,
        adapter: Adapter,
        prepared: PreparedPair,
        selected: Tensor,
        config: OptimConfig,
        p_image: float,
        p_baseline: float,
        words: Tensor | None = None,
        word_probs: list[tuple[float, float]] | None = None,
        initial: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.adapter, self.prepared, self.config = adapter, prepared, config
        device = prepared.answer_ids.device
        self.selected = selected.to(device)
        self.p_image, self.p_baseline = p_image, p_baseline
        words = torch.zeros(0, selected.numel(), dtype=torch.bool) if words is None else words
        if len(words) and config.masks != 1:
            raise LvlmHeatError("per-word maps take one mask per word: use them with --optim.masks 1")
        if len(word_probs or []) != len(words):
            raise ValueError("word_probs needs one (p_image, p_baseline) per word")
        # (groups, T) tokens scored by each group of masks: the joint selection, then one row per word
        self.groups = torch.cat([self.selected[None], words.to(device)]).float()
        self.word_probs = list(word_probs or [])
        # one mask, the iGOS++ pair (deletion mask, insertion mask), or the joint mask and one per word:
        # (slices, 1, h, w), 1 = keep; slice_group[s] is the token group whose score slice s is optimised for
        slices = len(self.groups) if len(words) else config.masks
        self.slice_group = list(range(slices)) if len(words) else [0] * slices
        mask = torch.ones(slices, 1, *mask_grid_shape(prepared.image_size, config.mask_size))
        if initial is not None:  # each group's mask starts at its prior (the iGOS++ N stays at 1)
            mask[: len(initial)] = initial.to(mask)
        self.mask = nn.Parameter(mask)
        self.automatic_optimization = False
        self.batch_size = config.batch_size
        self.score_scale: Tensor | None = None  # (slices, 1, 1, 1)
        self.history: list[dict[str, float]] = []
        self.deletion: Curve | None = None
        self.insertion: Curve | None = None
        self.word_curves: list[tuple[Curve, Curve]] = []
        if prepared.guide is None:
            raise LvlmHeatError(
                f"{type(adapter).__name__} left PreparedPair.guide unset: its prepare (or geometry) must give an "
                "image-shaped view of the processed image and its ViewWindow (README, 'Add your own model')"
            )
        guide, self.guide_window = prepared.guide
        self.edges = edge_weights(guide.float(), config.tv_sigma)

    def final_mask(self) -> Tensor:
        """``(1, 1, h, w)``: the joint mask the saliency and the curves are drawn from (the product of the
        deletion and insertion masks in the two-mask variant)."""
        if self.config.masks == 1:
            return self.mask[:1]
        return self.mask.prod(0, keepdim=True)

    def word_masks(self) -> Tensor:
        """``(W, 1, h, w)``: the mask of each word (empty without per-word maps)."""
        return self.mask[1:] if len(self.groups) > 1 else self.mask[:0]

    def score_terms(self) -> list[tuple[Tensor, bool, int]]:
        """The ``(1, 1, h, w)`` masks the integrated scores are taken along, each with its insertion flag
        and the token group it is scored on.

        One mask ``M``: ``L_del(M) - L_ins(M)``. Two masks (iGOS++): the deletion mask ``D`` and the
        insertion mask ``N`` each in its own game and their product in both,
        ``L_del(D) + L_del(D N) - L_ins(N) - L_ins(D N)``. Per-word maps: ``L_del(M_g) - L_ins(M_g)``
        for the joint mask and each word's, each on its own tokens.
        """
        if self.config.masks == 2:
            product = self.final_mask()
            terms = [(self.mask[:1], False, 0), (product, False, 0), (self.mask[1:], True, 0), (product, True, 0)]
        else:
            terms = [(self.mask[g : g + 1], flag, g) for g in range(len(self.mask)) for flag in (False, True)]
        # insertion weight 0: the deletion game alone, and no insertion composites to pay for
        return [term for term in terms if not term[1] or self.config.insertion_weight > 0]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return IGOSNesterov([self.mask], step_size=self.config.step_size, lr=self.config.lr,
                            momentum=self.config.momentum, independent_slices=len(self.groups) > 1)

    # -- scoring ----------------------------------------------------------------------------
    def score(self, pixels: dict[str, Tensor], groups: Tensor | None = None) -> Tensor:
        """``(N,)`` sum of the selected tokens' log-probabilities: ``score(X)`` of section 3; with
        ``groups`` (``(N,)`` group indices), composite ``j`` is scored on group ``groups[j]``'s tokens."""
        log_probs = self.adapter.answer_log_probs(self.prepared, pixels)
        if groups is None:
            return log_probs[:, self.selected].sum(-1)
        return (log_probs * self.groups[groups].to(log_probs)).sum(-1)

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
        terms = self.score_terms()
        insertion = torch.tensor([flag for _, flag, _ in terms for _ in range(n)], device=mask.device)
        group = torch.tensor([g for _, _, g in terms for _ in range(n)], device=mask.device)
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
            chunk_scores = self.score(self._noise(pixels, iteration, first), group[jobs])
            sign = torch.where(flags, -self.config.insertion_weight, 1.0).to(chunk_scores.dtype)
            self.manual_backward((sign * chunk_scores).sum() / n)
            scores[first:last] = chunk_scores.detach().float().cpu()

        self._in_chunks(len(insertion), run)
        self._rescale_score_gradient()

        weight = gnc_weight(iteration, config.gamma)
        losses = []  # per group of slices: its regulariser terms, and its loss
        for g in range(len(self.groups)):
            slices = [s for s, owner in enumerate(self.slice_group) if owner == g]
            part = mask[slices[0] : slices[-1] + 1]
            upsampled = sample_mask(part, self.guide_window, self.prepared.image_size)
            terms = {"l1": l1_term(part), "tv": bilateral_tv(part, upsampled, self.edges), "l2": l2_term(part)}
            jobs = (group == g).cpu()
            played = {flag: scores[jobs & (insertion.cpu() == flag)].sum().item() / n for flag in (False, True)}
            regulariser = config.l1 * terms["l1"] + config.l3 * terms["tv"] + config.l2 * weight * terms["l2"]
            game = played[False] - config.insertion_weight * played[True]
            total = game / self.score_scale[slices[0]].item() + regulariser.item()
            losses.append((played, terms, regulariser, total))
        self.manual_backward(sum(regulariser for _, _, regulariser, _ in losses))
        if not (all(math.isfinite(loss[-1]) for loss in losses) and torch.isfinite(mask.grad).all()):
            hint = ": fp16 overflows easily, try --precision bf16 or fp32" if self.adapter.dtype == torch.float16 else ""
            raise FloatingPointError(f"the loss or its gradient is not finite at iteration {iteration}{hint}")
        optimizer.step()

        played, terms, _, total = losses[0]
        record = {
            "deletion": played[False],
            "insertion": played[True],
            **{name: float(value.detach()) for name, value in terms.items()},
            "l2_weight": weight,
            "total": total,
            "mask_mean": float(mask.detach()[: self.slice_group.count(0)].mean()),
        }
        for w, (played, _, _, total) in enumerate(losses[1:]):
            record.update({f"word{w}/deletion": played[False], f"word{w}/insertion": played[True],
                           f"word{w}/total": total})
        self.history.append(record)
        self.log_dict({f"loss/{k}": v for k, v in record.items()}, on_step=True, on_epoch=False, batch_size=1)
        return torch.tensor(total)

    def _rescale_score_gradient(self) -> None:
        """Express each group's score gradient in units of its largest cell (relative weights), so the
        regulariser weights mean the same for every model, answer and word."""
        grad = self.mask.grad
        peaks = torch.zeros(len(self.mask), 1, 1, 1, device=grad.device)
        if self.config.relative_weights:  # the largest score gradient seen (the first, unless saturated)
            per_slice = grad.abs().flatten(1).amax(1)
            owners = torch.tensor(self.slice_group, device=grad.device)
            per_group = torch.zeros(len(self.groups), device=grad.device).scatter_reduce(0, owners, per_slice, "amax")
            peaks = per_group[owners].view(-1, 1, 1, 1)
            if self.score_scale is not None:
                peaks = torch.maximum(peaks, self.score_scale)
            self.score_scale = torch.where(peaks > 0, peaks, torch.ones_like(peaks))
        else:
            self.score_scale = torch.ones_like(peaks)
        grad.div_(self.score_scale)

    # -- curves of the final mask -----------------------------------------------------------
    @torch.no_grad()
    def curve_scores(self, keep: Tensor, insertion: bool, tokens: Tensor | None = None) -> Tensor:
        """``(N,)`` mean probability of the selected tokens (or of ``tokens``) for ``(N, 1, h, w)`` keep-masks."""
        tokens = self.selected if tokens is None else tokens
        out = torch.zeros(keep.shape[0])

        def run(first: int, last: int) -> None:
            pixels = self.composites(keep[first:last], insertion)
            log_probs = self.adapter.answer_log_probs(self.prepared, pixels)[:, tokens]
            out[first:last] = log_probs.float().exp().mean(-1).cpu()

        self._in_chunks(keep.shape[0], run)
        return out

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        steps = self.config.curve_steps

        def curves(mask: Tensor, tokens: Tensor, p_image: float, p_baseline: float) -> tuple[Curve, Curve]:
            def score(keep: Tensor, insertion: bool) -> Tensor:
                return self.curve_scores(keep, insertion, tokens)

            return tuple(perturbation_curve(score, mask, p_image, p_baseline, flag, steps) for flag in (False, True))

        self.deletion, self.insertion = curves(self.final_mask().detach(), self.selected, self.p_image, self.p_baseline)
        self.word_curves = [
            curves(mask[None].detach(), tokens.bool(), *probs)
            for mask, tokens, probs in zip(self.word_masks(), self.groups[1:], self.word_probs)
        ]
        aucs = {"auc/deletion": self.deletion.auc, "auc/insertion": self.insertion.auc}
        for w, (deletion, insertion) in enumerate(self.word_curves):
            aucs.update({f"auc/word{w}/deletion": deletion.auc, f"auc/word{w}/insertion": insertion.auc})
        self.log_dict(aucs, on_step=False, on_epoch=True, batch_size=1)
