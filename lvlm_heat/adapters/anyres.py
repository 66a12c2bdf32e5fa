"""Multi-resolution LLaVA: LLaVA-NeXT (anyres) and LLaVA-OneVision (anyres_max).

The processor makes one base view (the whole image resized to the vision tower's size)
and the tiles of the best-fit grid: the image is resized to fit ``best_resolution``
keeping its aspect ratio, padded (centred, zeros) to it, and cut into
``patch_size`` tiles in raster order. Every view then passes the usual resize and
centre crop. ``pixel_values`` is ``(1, views, 3, S, S)``, ``image_sizes`` ``(1, 2)``.
Each view is one :class:`ViewWindow` on the original image, so every tile gets the part
of the mask that covers it, rows and columns in the processor's order.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import Tensor
from transformers.image_processing_utils import get_patch_output_size, select_best_resolution

from lvlm_heat.adapters.base import HFAdapter, PreparedPair, ProcessorGeometry
from lvlm_heat.adapters.views import resize_and_crop, size_value
from lvlm_heat.geometry import ViewWindow, sample_mask


def anyres_windows(image_processor: Any, height: int, width: int) -> list[ViewWindow]:
    """The base view and the tiles of ``image_processor`` for a ``height x width`` image."""
    size = image_processor.size
    if size_value(size, "height") and size_value(size, "width"):
        base_size = (size_value(size, "height"), size_value(size, "width"))
    else:
        base_size = (size_value(size, "shortest_edge"),) * 2
    crop = image_processor.crop_size
    tile = size_value(crop, "height") if crop and size_value(crop, "height") else base_size[0]

    full = ViewWindow.full(height, width)
    best_h, best_w = select_best_resolution((height, width), image_processor.image_grid_pinpoints)
    dummy = torch.empty(1, height, width).numpy()
    new_h, new_w = get_patch_output_size(dummy, (best_h, best_w), input_data_format="channels_first")
    canvas = full.resize(new_h, new_w).crop(-((best_h - new_h) // 2), -((best_w - new_w) // 2), best_h, best_w)
    tiles = [canvas.crop(top, left, tile, tile) for top in range(0, best_h, tile) for left in range(0, best_w, tile)]
    return [resize_and_crop(image_processor, view) for view in [full.resize(*base_size), *tiles]]


class AnyResAdapter(HFAdapter):
    """``LlavaNextForConditionalGeneration`` and ``LlavaOnevisionForConditionalGeneration``."""

    model_types = ("llava_next", "llava_onevision")
    model_class = "AutoModelForImageTextToText"
    image_processor_types = ("LlavaNextImageProcessor", "LlavaOnevisionImageProcessor")

    def geometry(self, image: Image.Image, prepared: PreparedPair) -> ProcessorGeometry:
        """One window per view, base view first; the base view is the guide."""
        windows = anyres_windows(self.processor.image_processor, image.height, image.width)
        pixels = prepared.image["pixel_values"]
        expected = (len(windows), windows[0].rows, windows[0].cols)
        if (pixels.shape[1], *pixels.shape[-2:]) != expected:
            raise RuntimeError(
                f"the image processor produced views of shape {tuple(pixels.shape[1:])} where its settings predict "
                f"{expected}: this processor's geometry is not supported by {type(self).__name__}"
            )
        return ProcessorGeometry(windows, (pixels[0, :1], windows[0]))

    def project_mask(self, mask: Tensor, prepared: PreparedPair) -> dict[str, Tensor]:
        views = [sample_mask(mask, window, prepared.image_size) for window in prepared.geometry]  # (N, 1, S, S) each
        return {"pixel_values": torch.stack(views, dim=1)[:, None]}  # (N, 1, V, 1, S, S) against (1, V, 3, S, S)
