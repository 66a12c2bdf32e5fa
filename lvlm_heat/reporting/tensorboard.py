"""TensorBoard events of a pair's optimisation, and the images logged with them.

:class:`PairLogger` writes one pair's events into its own folder. Each pair is one process's own work,
whatever that process's rank in a multi-GPU run, so unlike Lightning's ``TensorBoardLogger`` (which writes on
global rank 0 only) it writes on every rank; a pair explained again starts its events afresh.

:class:`SaliencyImageLogger` adds the images: while the mask is optimised, the saliency ``1 - M`` after every
iteration; after the curves are drawn, the final heatmap over the original image, the deletion / insertion
curves with their AUC and, once per pair, the answer strip (each token coloured by its LLR, explained ones
boxed) as an image and as text. (The loss terms are logged by the module itself, with ``self.log``.) Figures
are rendered with Agg, never through ``pyplot``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from PIL import Image

from lvlm_heat.geometry import ViewWindow, sample_mask
from lvlm_heat.reporting.figures import curves_figure, display_size, figure_to_array, heatmap_overlay

EVENTS = "events.out.tfevents.*"
TENSORBOARD_SIDE = 512
"""Pixels on the long side of the overlays logged to TensorBoard (a photo of any size)."""


class PairLogger(Logger):
    """TensorBoard events of one pair in ``folder`` (scalars by ``self.log``; images through :attr:`experiment`).

    Args:
        folder: The pair's folder; its earlier event files (a killed or repeated run) are removed.
    """

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = Path(folder)
        self._writer = None
        self.step_offset = 0
        """Added to every step: a later stage (the fine stage) continues the optimisation's steps."""
        if self.folder.is_dir():
            for stale in self.folder.glob(EVENTS):
                stale.unlink(missing_ok=True)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def version(self) -> str:
        return ""

    @property
    def log_dir(self) -> str:
        return str(self.folder)

    @property
    def save_dir(self) -> str:
        return str(self.folder.parent)

    @property
    def experiment(self):
        """The ``SummaryWriter`` (made on first use)."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.folder.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(self.folder))
        return self._writer

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        step = None if step is None else step + self.step_offset
        for name, value in metrics.items():
            self.experiment.add_scalar(name, float(value), step)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The settings are in the pair's ``result.json``: nothing to log here."""

    def save(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def finalize(self, status: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def tensorboard_writer(trainer: Trainer):
    """The trainer's ``SummaryWriter``, or ``None`` when it logs elsewhere or nowhere."""
    logger = trainer.logger
    return logger.experiment if isinstance(logger, (PairLogger, TensorBoardLogger)) else None


def _step(trainer: Trainer) -> int:
    """The trainer's step as the pair's events count it (a later stage continues the earlier one's steps)."""
    return trainer.global_step + getattr(trainer.logger, "step_offset", 0)


class SaliencyImageLogger(Callback):
    """Logs the evolving masks, the final overlays and the curves of a :class:`~lvlm_heat.explainer.MaskExplainer`
    or of the fine stage (:class:`~lvlm_heat.refine.SuperpixelRefiner`).

    Args:
        image: The original image, for the overlay.
        tokens: The answer's tokens (:class:`~lvlm_heat.record.TokenScore`), for the answer strip (none logged
            without them).
        words: The names of the module's per-word masks, in order (``mask/word_<name>``, ``saliency/word_<name>``).
    """

    def __init__(self, image: Image.Image, tokens: list | None = None, words: list[str] | None = None) -> None:
        self.image = image
        self.tokens = tokens
        self.words = list(words or [])

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        writer = tensorboard_writer(trainer)
        if writer is not None:
            masks, step = pl_module.final_masks().detach().cpu(), _step(trainer)
            writer.add_image("mask/saliency", 1 - masks[0], step)
            for name, mask in zip(self.words, masks[1:]):
                writer.add_image(f"mask/word_{name}", 1 - mask, step)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or not pl_module.curves:
            return
        step = _step(trainer)
        size = (self.image.height, self.image.width)
        shown = ViewWindow.full(*size).resize(*display_size(*size, TENSORBOARD_SIDE))
        masks = pl_module.final_masks().detach().float()
        for name, mask in zip(["overlay", *(f"word_{w}" for w in self.words)], masks):
            saliency = sample_mask(1 - mask[None], shown, size)  # the map at the picture's display size
            overlay = heatmap_overlay(self.image, saliency[0, 0].cpu().numpy())
            writer.add_image(f"saliency/{name}", np.ascontiguousarray(overlay), step, dataformats="HWC")
        writer.add_image("auc/curves", figure_to_array(curves_figure(*pl_module.curves[0])), step, dataformats="HWC")
        if self.tokens:
            log_answer_strip(writer, self.tokens, step)
        writer.flush()


def log_answer_strip(writer, tokens: list, step: int = 0) -> None:
    """The answer strip as the image ``answer/strip`` and as text ``answer/tokens`` (LLR per token,
    explained ones in bold)."""
    from lvlm_heat.reporting.strip import strip_figure, strip_markdown

    writer.add_image("answer/strip", figure_to_array(strip_figure(tokens)), step, dataformats="HWC")
    writer.add_text("answer/tokens", strip_markdown(tokens), step)
