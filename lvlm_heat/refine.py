"""A fine stage after the coarse mask: one keep value per superpixel (issue 22, "sharp maps").

The coarse mask (:mod:`lvlm_heat.explainer`) has 32 cells on the image's long side, is read bilinearly and
smoothed by the bilateral TV term: its mass spreads in a halo around the evidence. This stage gives the
mask a basis that follows the image's own edges and plays the same game again for a few iterations:

1. the image is cut into SLIC superpixels on the work grid (:func:`~lvlm_heat.methods.superpixels.slic`);
2. the mask becomes one keep value ``v_k`` per superpixel, rendered as ``M(p) = v_{label(p)}`` on the
   work grid (a fine cell grid over the whole image, which the adapter reads like any mask); each ``v_k``
   starts at the coarse mask's mean over its superpixel, so the stage starts where the coarse one ended;
3. each iteration plays ``L_del(M) - L_ins(M)`` along the same integrated-gradient path. Its gradient per
   superpixel, divided by the superpixel's area (a gradient per pixel, so a small superpixel moves as fast
   as a large one), is expressed in units of its largest so far; the L1 term ``l1 * mean(|1 - M|)`` then
   adds ``-l1`` per pixel, so a superpixel that matters less than ``l1`` times the most important one drifts
   back to 1. The step is a plain projected one, the largest move ``step_size``, without momentum.
   No TV term: neighbouring superpixels meet at the image's edges, where a step in the mask is what a
   sharp map needs.

4. the map is the coarse map gated by the refined one (:func:`gate`): the fine stage chooses which superpixels
   hold the evidence, the coarse mask grades the pixels inside them, so the map keeps the coarse peak unless the
   fine stage cleared it, and loses the halo around it.

With ``iterations 0`` the stage only pools the coarse mask over the superpixels (no forward pass). The
curves are ranked on the coarse grid's cells by the map's mean over each, exactly as the other
explainers' maps are (:func:`lvlm_heat.pipeline`), so their AUCs compare on the same footing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lvlm_heat.config import OptimConfig, RefineConfig
from lvlm_heat.explainer import OptimisedMask
from lvlm_heat.geometry import upsample_to_image
from lvlm_heat.losses import l1_term
from lvlm_heat.methods.superpixels import slic, work_image
from lvlm_heat.metrics.curves import Curve, auc_scalars
from lvlm_heat.prepare import Prepared


def segment_means(masks: Tensor, labels: Tensor) -> Tensor:
    """``(G, K)`` mean of each ``(G, 1, H, W)`` mask over each of the ``K`` segments of ``(H, W)`` labels.

    Example:
        >>> segment_means(torch.tensor([[[[0.0, 1.0], [0.5, 1.0]]]]), torch.tensor([[0, 1], [0, 1]])).tolist()
        [[0.25, 1.0]]
    """
    flat, index = masks.flatten(1).float(), labels.flatten().to(masks.device)
    segments = int(index.max()) + 1
    sums = torch.zeros(len(masks), segments, device=masks.device).index_add_(1, index, flat)
    counts = torch.bincount(index, minlength=segments).clamp_min(1)
    return sums / counts


def gate(coarse: Tensor, refined: Tensor, share: float) -> Tensor:
    """The map's mask (1 = keep) from both stages' masks: the coarse saliency ``1 - coarse`` gated by the refined
    one, ``1 - M = (1 - coarse) ((1 - share)(1 - refined) + share)``.

    Example: a superpixel the fine stage removed keeps the coarse saliency, one it kept keeps ``share`` of it.
        >>> [round(v, 3) for v in gate(torch.tensor([0.2, 0.2, 0.6]), torch.tensor([0.0, 1.0, 0.0]), 0.01).tolist()]
        [0.2, 0.992, 0.6]
    """
    return 1 - (1 - coarse) * ((1 - share) * (1 - refined) + share)


def render(values: Tensor, labels: Tensor) -> Tensor:
    """``(G, 1, H, W)``: each pixel of the label map takes its segment's value of ``(G, K)`` ``values``."""
    return values[:, labels][:, None]


class SuperpixelRefiner(LightningModule):
    """Optimises one keep value per superpixel, starting from a coarse mask (see the module's docstring).

    Args:
        prepared: The pair: its scorer and token groups.
        coarse: ``(G, 1, h, w)`` the coarse stage's final masks (1 = keep).
        labels: ``(H, W)`` long superpixel labels ``0 .. K - 1`` on the work grid over the whole image.
        optim: The coarse stage's settings (integrated-gradient points, insertion weight, seed).
        config: This stage's settings.
    """

    def __init__(self, prepared: Prepared, coarse: Tensor, labels: Tensor, optim: OptimConfig,
                 config: RefineConfig) -> None:
        super().__init__()
        self.prepared, self.optim, self.config = prepared, optim, config
        self.scorer = prepared.scorer
        device = prepared.inputs.answer_ids.device
        self.labels = labels.to(device)
        start = upsample_to_image(coarse.detach().float().to(device), tuple(labels.shape))
        self.values = nn.Parameter(segment_means(start, self.labels))  # (G, K), 1 = keep
        self.start = start  # (G, 1, H, W) the coarse masks on the work grid
        self.areas = torch.bincount(self.labels.flatten(), minlength=self.values.shape[1]).clamp_min(1).float()
        self.groups = prepared.groups.to(device).float()  # (G, T)
        self.automatic_optimization = False
        self.score_scale: Tensor | None = None  # (G, 1)
        self.history: list[dict[str, float]] = []
        self.curves: list[tuple[Curve, Curve]] = []

    def masks(self) -> Tensor:
        """``(G, 1, H, W)`` the rendered masks on the work grid."""
        return render(self.values.clamp(0, 1), self.labels)

    def final_masks(self) -> Tensor:
        """``(G, 1, H, W)`` the maps' masks (1 = keep): the coarse saliency ``1 - M_c`` gated by the refined one,
        ``1 - M = (1 - M_c) ((1 - s)(1 - M_r) + s)`` with ``s`` = ``coarse_share``.

        The fine stage chooses which superpixels hold evidence; the coarse mask grades them. Inside a superpixel
        the fine stage removed, the map keeps the coarse map's values and its peak; a superpixel it kept (the
        halo, the background) keeps ``s`` of them, ordered for the curves. Taking the refined mask itself as the
        map instead (``(1 - s)`` refined ``+ s`` coarse, as first built) left every removed superpixel tied at 0:
        where one of them lay on another object and the coarse peak's own superpixel had been partly restored,
        the peak moved to the other object (EXPERIMENTS.md, "the fine stage as a gate")."""
        return gate(self.start, self.masks(), self.config.coarse_share).detach()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # plain projected steps, no momentum: IGOSNesterov's momentum runs on the unclamped iterate, so a value held
        # at 1 is pulled back below it on the next step, and the map's faint background flickers from step to step
        return torch.optim.SGD([self.values], lr=1.0)

    def _noise(self, pixels: dict[str, Tensor], iteration: int, first: int) -> dict[str, Tensor]:
        """Seeded noise of std ``refine.noise`` per (iteration, composite), apart from the coarse stage's draws."""
        if self.config.noise == 0:
            return pixels
        out, generator = {}, torch.Generator(device=self.values.device)
        for slot, (key, value) in enumerate(pixels.items()):
            draws = []
            for j in range(value.shape[0]):
                generator.manual_seed(((self.optim.seed * 1013 + 7919 + iteration) * 100_003 + first + j) * 17 + slot)
                draws.append(torch.randn(value.shape[1:], generator=generator, device=value.device))
            out[key] = value + self.config.noise * torch.stack(draws)
        return out

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        optim, optimizer = self.optim, self.optimizers()
        optimizer.zero_grad()
        n, device = optim.ig_iter, self.values.device
        path = torch.arange(1, n + 1, device=device, dtype=self.values.dtype) / n
        flags = [False, True] if optim.insertion_weight > 0 else [False]
        # job j: path point j % n of (group, game) j // n
        games = [(g, flag) for g in range(len(self.values)) for flag in flags]
        group = torch.tensor([g for g, _ in games for _ in range(n)], device=device)
        insertion = torch.tensor([flag for _, flag in games for _ in range(n)], device=device)
        scores = torch.zeros(len(group))

        def run(first: int, last: int) -> None:
            jobs = torch.arange(first, last, device=device)
            masks = self.masks()[group[jobs]] * path[jobs % n].view(-1, 1, 1, 1)
            pixels = self.scorer.composites(masks, insertion[jobs])
            log_probs = self.scorer.log_probs(self._noise(pixels, batch_idx, first))
            chunk = (log_probs * self.groups[group[jobs]].to(log_probs)).sum(-1)
            sign = torch.where(insertion[jobs], -optim.insertion_weight, 1.0).to(chunk.dtype)
            self.manual_backward((sign * chunk).sum() / n)
            scores[first:last] = chunk.detach().float().cpu()

        self.scorer.in_chunks(len(group), run)
        # per pixel of each superpixel (a preconditioned step: small superpixels move as fast as large ones), in
        # units of the largest so far; the L1 term adds the same -l1 per pixel everywhere below 1
        grad = self.values.grad
        density = grad / self.areas
        peaks = density.abs().amax(1, keepdim=True)
        if self.score_scale is not None:
            peaks = torch.maximum(peaks, self.score_scale)
        self.score_scale = torch.where(peaks > 0, peaks, torch.ones_like(peaks))
        with torch.no_grad():
            sparsity = torch.stack([l1_term(mask) for mask in self.masks()])  # (G,) for the log
            grad.copy_(density / self.score_scale - self.config.l1)
            # a value held at a bound and pushed past it cannot move: it must not set the step
            values = self.values
            grad.masked_fill_(((values >= 1) & (grad < 0)) | ((values <= 0) & (grad > 0)), 0)
            # relative step: the value pushed hardest moves by step_size (per group)
            grad.mul_(self.config.step_size / grad.abs().amax(1, keepdim=True).clamp_min(1e-12))
        optimizer.step()
        with torch.no_grad():
            self.values.clamp_(0, 1)
        deletion = scores[(group.cpu() == 0) & ~insertion.cpu()].sum().item() / n
        inserted = scores[(group.cpu() == 0) & insertion.cpu()].sum().item() / n
        record = {"refine/deletion": deletion, "refine/insertion": inserted, "refine/l1": float(sparsity[0].detach()),
                  "refine/mask_mean": float(self.values.detach()[0].mean())}
        self.history.append(record)
        self.log_dict(record, on_step=True, on_epoch=False, batch_size=1)
        return torch.tensor(deletion - optim.insertion_weight * inserted)

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        masks = self.final_masks()
        ranking = F.adaptive_avg_pool2d(masks, self.scorer.grid)  # (G, 1, h, w), low = important
        self.curves = [self.scorer.curves(ranking[g : g + 1], self.groups[g].bool(), *self.prepared.probabilities[g],
                                          self.optim.curve_steps) for g in range(len(masks))]
        self.log_dict(auc_scalars(self.curves), on_step=False, on_epoch=True, batch_size=1)


def superpixel_labels(prepared: Prepared, config: RefineConfig) -> Tensor:
    """``(H, W)`` SLIC labels of the pair's image on the work grid."""
    return slic(work_image(prepared.query.image), config.segments, config.compactness)


def refine_mask(prepared: Prepared, coarse: OptimisedMask, optim: OptimConfig, config: RefineConfig, *,
                logger: Logger | None = None, callbacks: Sequence[Callback] = (),
                trainer_overrides: dict[str, Any] | None = None) -> OptimisedMask:
    """The fine stage: ``config.iterations`` iterations on a superpixel basis after the coarse mask, then the
    curves of the refined masks.

    Args:
        prepared: The pair.
        coarse: The coarse stage's result (its curves are not needed and may be empty).
        optim: The coarse stage's settings (see :class:`SuperpixelRefiner`).
        config: This stage's settings.

    Returns:
        The refined ``(G, 1, H, W)`` masks on the work grid, their curves, the coarse history followed by this
        stage's, and both stages' passes and seconds.
    """
    labels = superpixel_labels(prepared, config)
    device = prepared.scorer.adapter.device
    settings = {"accelerator": "gpu" if device.type == "cuda" else "cpu",
                "devices": [device.index or 0] if device.type == "cuda" else 1, "max_epochs": 1,
                "logger": logger or False, "callbacks": list(callbacks), "enable_checkpointing": False,
                "enable_model_summary": False, "enable_progress_bar": False, "log_every_n_steps": 1,
                "num_sanity_val_steps": 0, "precision": "32-true"}
    settings.update(trainer_overrides or {})
    module = SuperpixelRefiner(prepared, coarse.masks, labels, optim, config)
    before, start = prepared.scorer.passes, prepared.clock.laps.get("refine", 0.0)
    if config.iterations > 0:
        Trainer(**settings).fit(module, train_dataloaders=DataLoader(range(config.iterations), batch_size=None))
    prepared.clock.lap("refine")
    passes, seconds = prepared.scorer.passes - before, prepared.clock.laps["refine"] - start
    Trainer(**settings).test(module, dataloaders=DataLoader([0], batch_size=None), verbose=False)
    prepared.clock.lap("curves")
    return OptimisedMask(module.final_masks(), module.curves, coarse.history + module.history,
                         coarse.passes + passes, coarse.seconds + seconds)
