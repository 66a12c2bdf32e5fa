"""LLaVA-1.5-style models: one CLIP-like view, ``pad to square -> resize -> centre crop``.

Covers ``LlavaForConditionalGeneration`` with a ``CLIPImageProcessor`` (resize the short
side, centre-crop: the original LLaVA-1.5) or a ``LlavaImageProcessor`` with ``do_pad``
(pad to a square with the mean colour first, as LLaVA-1.5's ``expand2square``).
"""

from __future__ import annotations

from PIL import Image
from torch import Tensor

from lvlm_heat.adapters.base import HFAdapter, PreparedPair, ProcessorGeometry
from lvlm_heat.adapters.views import single_view_window
from lvlm_heat.geometry import sample_mask


class LlavaAdapter(HFAdapter):
    """``LlavaForConditionalGeneration``: pixel_values ``(1, 3, S, S)`` from a single view."""

    model_types = ("llava",)
    model_class = "LlavaForConditionalGeneration"
    image_processor_types = ("CLIPImageProcessor", "LlavaImageProcessor")

    def geometry(self, image: Image.Image, prepared: PreparedPair) -> ProcessorGeometry:
        """The view's :class:`~lvlm_heat.geometry.ViewWindow`, which is also the guide's."""
        window = single_view_window(self.processor.image_processor, image.height, image.width)
        shape = tuple(prepared.image["pixel_values"].shape[-2:])
        if shape != (window.rows, window.cols):
            raise RuntimeError(
                f"the image processor produced {shape} pixels where its settings predict "
                f"{(window.rows, window.cols)}: this processor's geometry is not supported by {type(self).__name__}"
            )
        return ProcessorGeometry(window, (prepared.image["pixel_values"][:1], window))

    def project_mask(self, mask: Tensor, prepared: PreparedPair) -> dict[str, Tensor]:
        weight = sample_mask(mask, prepared.geometry, prepared.image_size)  # (N, 1, S, S)
        return {"pixel_values": weight[:, None]}  # against (1, 3, S, S)
