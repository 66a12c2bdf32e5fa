"""The mask optimiser: one image-question pair as a LightningModule.

Reading order, as the algorithm runs:

1. the mask ``M`` (``(1, 1, h, w)`` cells over the original image, 1 = keep; ``(1, K, h, w)``, one channel per
   image, for a question about ``K`` images or a clip's ``K`` frames) is the module's only parameter; the frozen model stays behind the pair's :class:`~lvlm_heat.scorer.CompositeScorer`, never
   registered as a submodule. Per-word maps stack one more mask per word, ``(1 + W, 1, h, w)``: each is
   scored on its own tokens (the first on all selected tokens, the joint map), and all their composites
   share the batches;
2. one ``training_step`` is one iteration: ``ig_iter`` points ``t_k M`` along the integration path give
   deletion composites ``phi(I, B, t_k M~)`` and insertion composites ``phi(B, I, t_k M~)``, evaluated in
   batches, noised, and scored;
3. ``L_del - L_ins`` is back-propagated chunk by chunk (memory stays bounded), expressed in units of its
   largest gradient (so the regulariser weights are relative to it), then the L1, bilateral-TV (each image's
   mask against its own edges) and GNC-decayed L2 terms, and for a clip the temporal smoothness between
   consecutive frames' masks, are added and :class:`~lvlm_heat.optim.IGOSNesterov` steps;
4. ``test_step`` draws the deletion and insertion curves of the final mask.

:func:`optimise_mask` runs it on a single-device trainer of its own: ``fit`` over the iterations, ``test``
for the curves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lvlm_heat.config import OptimConfig
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.geometry import sample_mask
from lvlm_heat.losses import bilateral_tv, edge_weights, gnc_weight, l1_term, l2_term, temporal_smoothness
from lvlm_heat.metrics.curves import Curve, auc_scalars
from lvlm_heat.optim import IGOSNesterov
from lvlm_heat.prepare import Prepared


class MaskExplainer(LightningModule):
    """Optimises the perturbation mask of one prepared pair.

    Args:
        prepared: The pair: its scorer, and the groups of tokens each mask is scored on (``prepared.groups``:
            the joint selection, then each word with a map of its own).
        config: Optimisation settings.
        initial: ``(G, images, h, w)`` starting mask of each group (the warm start; the two-mask variant starts its
            deletion mask there), or ``None``: 1 everywhere.
        smoothness: Weight of the temporal smoothness term between consecutive images' masks (a clip's frames);
            0 leaves the images independent but for the shared ranking of the game.
    """

    def __init__(self, prepared: Prepared, config: OptimConfig, initial: Tensor | None = None,
                 smoothness: float = 0.0) -> None:
        super().__init__()
        self.prepared, self.config = prepared, config
        self.scorer = prepared.scorer
        inputs = self.scorer.inputs
        device = inputs.answer_ids.device
        words = len(prepared.groups) - 1
        if words and config.masks != 1:
            raise LvlmHeatError("per-word maps take one mask per word: use them with --optim.masks 1")
        self.groups = prepared.groups.to(device).float()  # (G, T) tokens scored by each group of masks
        self.probabilities = list(prepared.probabilities)
        # one mask, the iGOS++ pair (deletion mask, insertion mask), or the joint mask and one per word:
        # (slices, 1, h, w), 1 = keep; slice_group[s] is the token group whose score slice s is optimised for
        slices = len(self.groups) if words else config.masks
        self.slice_group = list(range(slices)) if words else [0] * slices
        mask = torch.ones(slices, self.scorer.images, *self.scorer.grid)
        if initial is not None:  # each group's mask starts at its prior (the iGOS++ N stays at 1)
            mask[: len(initial)] = initial.to(mask)
        self.mask = nn.Parameter(mask)
        self.automatic_optimization = False
        self.score_scale: Tensor | None = None  # (slices, 1, 1, 1)
        self.history: list[dict[str, float]] = []
        self.curves: list[tuple[Curve, Curve]] = []
        """After ``test``: the deletion and insertion curves of each group's final mask."""
        if any(part.guide is None for part in (inputs.parts or [inputs])):
            raise LvlmHeatError(
                f"{type(self.scorer.adapter).__name__} left PreparedPair.guide unset: its prepare (or geometry) must "
                "give an image-shaped view of the processed image and its ViewWindow (docs/models.md)"
            )
        self.smoothness = smoothness
        # each image's mask follows its own edges: (edge weights, view window, image size) per image
        self.guides = [(edge_weights(part.guide[0].float(), config.tv_sigma), part.guide[1], part.image_size)
                       for part in (inputs.parts or [inputs])]

    def final_masks(self) -> Tensor:
        """``(G, 1, h, w)``: the mask each group's map and curves are drawn from: the joint mask (the product of
        the deletion and insertion masks in the two-mask variant), then each word's."""
        if self.config.masks == 1:
            return self.mask
        return self.mask.prod(0, keepdim=True)

    def score_terms(self) -> list[tuple[Tensor, bool, int]]:
        """The ``(1, 1, h, w)`` masks the integrated scores are taken along, each with its insertion flag
        and the token group it is scored on.

        One mask ``M``: ``L_del(M) - L_ins(M)``. Two masks (iGOS++): the deletion mask ``D`` and the
        insertion mask ``N`` each in its own game and their product in both,
        ``L_del(D) + L_del(D N) - L_ins(N) - L_ins(D N)``. Per-word maps: ``L_del(M_g) - L_ins(M_g)``
        for the joint mask and each word's, each on its own tokens.
        """
        if self.config.masks == 2:
            product = self.final_masks()
            terms = [(self.mask[:1], False, 0), (product, False, 0), (self.mask[1:], True, 0), (product, True, 0)]
        else:
            terms = [(self.mask[g : g + 1], flag, g) for g in range(len(self.mask)) for flag in (False, True)]
        # insertion weight 0: the deletion game alone, and no insertion composites to pay for
        return [term for term in terms if not term[1] or self.config.insertion_weight > 0]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return IGOSNesterov([self.mask], step_size=self.config.step_size, lr=self.config.lr,
                            momentum=self.config.momentum, independent_slices=len(self.groups) > 1)

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
            pixels = self.scorer.composites(path[jobs % n].view(-1, 1, 1, 1) * masks, insertion[jobs])
            log_probs = self.scorer.log_probs(self._noise(pixels, iteration, first))
            chunk_scores = (log_probs * self.groups[group[jobs]].to(log_probs)).sum(-1)  # score(X), each on its group
            sign = torch.where(insertion[jobs], -config.insertion_weight, 1.0).to(chunk_scores.dtype)
            self.manual_backward((sign * chunk_scores).sum() / n)
            scores[first:last] = chunk_scores.detach().float().cpu()

        self.scorer.in_chunks(len(insertion), run)
        self._rescale_score_gradient()

        weight = gnc_weight(iteration, config.gamma)
        losses = []  # per group of slices: its regulariser terms, and its loss
        for g in range(len(self.groups)):
            slices = [s for s, owner in enumerate(self.slice_group) if owner == g]
            part = mask[slices[0] : slices[-1] + 1]
            terms = {"l1": l1_term(part), "tv": self._tv(part), "l2": l2_term(part)}
            if self.smoothness > 0 and part.shape[1] > 1:
                terms["temporal"] = temporal_smoothness(part)
            jobs = (group == g).cpu()
            played = {flag: scores[jobs & (insertion.cpu() == flag)].sum().item() / n for flag in (False, True)}
            regulariser = config.l1 * terms["l1"] + config.l3 * terms["tv"] + config.l2 * weight * terms["l2"]
            if "temporal" in terms:
                regulariser = regulariser + self.smoothness * terms["temporal"]
            game = played[False] - config.insertion_weight * played[True]
            total = game / self.score_scale[slices[0]].item() + regulariser.item()
            losses.append((played, terms, regulariser, total))
        self.manual_backward(sum(regulariser for _, _, regulariser, _ in losses))
        if not (all(math.isfinite(loss[-1]) for loss in losses) and torch.isfinite(mask.grad).all()):
            dtype = self.scorer.adapter.dtype
            hint = ": fp16 overflows easily, try --precision bf16 or fp32" if dtype == torch.float16 else ""
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

    def _tv(self, part: Tensor) -> Tensor:
        """Bilateral TV of ``(S, images, h, w)`` masks: each image's against its own edges, averaged over images."""
        total = [bilateral_tv(part[:, k : k + 1], sample_mask(part[:, k : k + 1], window, size), edges)
                 for k, (edges, window, size) in enumerate(self.guides)]
        return total[0] if len(total) == 1 else torch.stack(total).mean()

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
    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        masks = self.final_masks().detach()
        self.curves = [self.scorer.curves(masks[g : g + 1], self.groups[g].bool(), *self.probabilities[g],
                                          self.config.curve_steps) for g in range(len(self.groups))]
        self.log_dict(auc_scalars(self.curves), on_step=False, on_epoch=True, batch_size=1)


@dataclass(frozen=True)
class OptimisedMask:
    """What the optimisation gives the rest of the method.

    Attributes:
        masks: ``(G, 1, h, w)`` the final mask of each group (1 = keep): the joint map's, then each word's.
        curves: Per group, the deletion and insertion curves of its mask.
        history: Per iteration, every loss term (as logged).
        passes: Composites the iterations scored (not the curves).
        seconds: Wall time of the iterations (not the curves).
    """

    masks: Tensor
    curves: list[tuple[Curve, Curve]]
    history: list[dict[str, float]]
    passes: int = 0
    seconds: float = 0.0


def optimise_mask(prepared: Prepared, config: OptimConfig, initial: Tensor | None = None, smoothness: float = 0.0, *,
                  logger: Logger | None = None, callbacks: Sequence[Callback] = (),
                  trainer_overrides: dict[str, Any] | None = None) -> OptimisedMask:
    """Optimise the pair's mask and draw its curves: ``fit`` over ``config.iterations``, then ``test``.

    The trainer is the pair's own, on the model's device, in full precision (the mask and the loss; the model
    runs in its own dtype). The phases ``optimise`` and ``curves`` are timed on ``prepared.clock``.

    Returns:
        The final masks, their curves and the loss history.
    """
    device = prepared.scorer.adapter.device
    settings = dict(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
        max_epochs=1,
        logger=logger or False,
        callbacks=list(callbacks),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        precision="32-true",
    )
    settings.update(trainer_overrides or {})
    trainer = Trainer(**settings)
    module = MaskExplainer(prepared, config, initial, smoothness)
    before, start = prepared.scorer.passes, prepared.clock.laps.get("optimise", 0.0)
    trainer.fit(module, train_dataloaders=DataLoader(range(config.iterations), batch_size=None))
    prepared.clock.lap("optimise")
    passes, seconds = prepared.scorer.passes - before, prepared.clock.laps["optimise"] - start
    trainer.test(module, dataloaders=DataLoader([0], batch_size=None), verbose=False)
    prepared.clock.lap("curves")
    return OptimisedMask(module.final_masks().detach(), module.curves, module.history, passes, seconds)
