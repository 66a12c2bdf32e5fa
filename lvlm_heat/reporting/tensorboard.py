"""TensorBoard images of an explanation, logged through the trainer's logger.

While the mask is optimised: the saliency ``1 - M`` after every iteration. After the
curves are drawn: the final heatmap over the original image, the deletion /
insertion curves with their AUC and, once per pair, the answer strip (each token
coloured by its LLR, explained ones boxed) as an image and as text. (The loss terms
are logged by the module itself, with ``self.log``.) Figures are rendered with Agg,
never through ``pyplot``.
"""

from __future__ import annotations

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image

from lvlm_heat.geometry import upsample_to_image
from lvlm_heat.reporting.figures import curves_figure, figure_to_array, heatmap_overlay


def tensorboard_writer(trainer: Trainer):
    """The trainer's ``SummaryWriter``, or ``None`` when it logs elsewhere or nowhere."""
    logger = trainer.logger
    return logger.experiment if isinstance(logger, TensorBoardLogger) else None


class SaliencyImageLogger(Callback):
    """Logs the evolving mask, the final overlay and the curves of a :class:`MaskExplainer`.

    Args:
        image: The original image, for the overlay.
        tokens: The answer's :class:`~lvlm_heat.record.TokenScore`\\ s, for the answer strip (none logged
            without them).
        words: The names of the module's per-word masks, in order (``mask/word_<name>``,
            ``saliency/word_<name>``).
    """

    def __init__(self, image: Image.Image, tokens: list | None = None, words: list[str] | None = None) -> None:
        self.image = image
        self.tokens = tokens
        self.words = list(words or [])

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        writer = tensorboard_writer(trainer)
        if writer is not None:
            writer.add_image("mask/saliency", (1 - pl_module.final_mask().detach()[0]).cpu(), trainer.global_step)
            for name, mask in zip(self.words, pl_module.word_masks().detach()):
                writer.add_image(f"mask/word_{name}", (1 - mask).cpu(), trainer.global_step)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or pl_module.deletion is None:
            return
        step = trainer.global_step
        saliency = 1 - upsample_to_image(pl_module.final_mask().detach().float(), (self.image.height, self.image.width))
        overlay = heatmap_overlay(self.image, saliency[0, 0].cpu().numpy())
        writer.add_image("saliency/overlay", np.ascontiguousarray(overlay), step, dataformats="HWC")
        for name, mask in zip(self.words, pl_module.word_masks().detach().float()):
            saliency = 1 - upsample_to_image(mask[None], (self.image.height, self.image.width))
            overlay = heatmap_overlay(self.image, saliency[0, 0].cpu().numpy())
            writer.add_image(f"saliency/word_{name}", np.ascontiguousarray(overlay), step, dataformats="HWC")
        writer.add_image("auc/curves", figure_to_array(curves_figure(pl_module.deletion, pl_module.insertion)), step,
                         dataformats="HWC")
        if self.tokens:
            log_answer_strip(writer, self.tokens, step)
        writer.flush()


def log_answer_strip(writer, tokens: list, step: int = 0) -> None:
    """The answer strip as the image ``answer/strip`` and as text ``answer/tokens`` (LLR per token,
    explained ones in bold)."""
    from lvlm_heat.reporting.strip import strip_figure, strip_tokens

    writer.add_image("answer/strip", figure_to_array(strip_figure(tokens)), step, dataformats="HWC")
    text = " ".join(f"**{t.text} {t.llr:+.2f}**" if t.selected else f"{t.text} {t.llr:+.2f}"
                    for t in strip_tokens(tokens) if t.llr is not None)
    writer.add_text("answer/tokens", f"{text}  \n(LLR per token; **bold** = explained)", step)
