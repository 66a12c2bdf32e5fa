"""TensorBoard images of an explanation, logged through the trainer's logger.

While the mask is optimised: the saliency ``1 - M`` after every iteration. After the
curves are drawn: the final heatmap over the original image and the deletion /
insertion curves with their AUC. (The loss terms are logged by the module itself,
with ``self.log``.)
"""

from __future__ import annotations

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image

from lvlm_heat.geometry import upsample_to_image
from lvlm_heat.reporting.figures import curves_figure, heatmap_overlay


def tensorboard_writer(trainer: Trainer):
    """The trainer's ``SummaryWriter``, or ``None`` when it logs elsewhere or nowhere."""
    logger = trainer.logger
    return logger.experiment if isinstance(logger, TensorBoardLogger) else None


class SaliencyImageLogger(Callback):
    """Logs the evolving mask, the final overlay and the curves of a :class:`MaskExplainer`.

    Args:
        image: The original image, for the overlay.
    """

    def __init__(self, image: Image.Image) -> None:
        self.image = image

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        writer = tensorboard_writer(trainer)
        if writer is not None:
            writer.add_image("mask/saliency", (1 - pl_module.final_mask().detach()[0]).cpu(), trainer.global_step)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or pl_module.deletion is None:
            return
        step = trainer.global_step
        saliency = 1 - upsample_to_image(pl_module.final_mask().detach().float(), (self.image.height, self.image.width))
        overlay = heatmap_overlay(self.image, saliency[0, 0].cpu().numpy())
        writer.add_image("saliency/overlay", np.ascontiguousarray(overlay), step, dataformats="HWC")
        writer.add_figure("auc/curves", curves_figure(pl_module.deletion, pl_module.insertion), step)
        writer.flush()
