"""LLaVA-1.5-style models: one CLIP-like view, ``pad to square -> resize -> centre crop``.

Covers ``LlavaForConditionalGeneration`` with a ``CLIPImageProcessor`` (resize the short
side, centre-crop: the original LLaVA-1.5) or a ``LlavaImageProcessor`` with ``do_pad``
(pad to a square with the mean colour first, as LLaVA-1.5's ``expand2square``).
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import Tensor
from transformers.image_processing_backends import (
    get_image_size_for_max_height_width,
    get_resize_output_image_size,
    get_size_with_aspect_ratio,
)

from lvlm_heat.adapters.base import HFAdapter, PreparedPair
from lvlm_heat.geometry import ViewWindow, sample_mask


def size_value(size: Any, key: str) -> int | None:
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def resized_shape(image_processor: Any, height: int, width: int) -> tuple[int, int]:
    """``(rows, cols)`` the processor resizes a ``height x width`` image to, by its own rules."""
    size = image_processor.size
    shortest, longest = size_value(size, "shortest_edge"), size_value(size, "longest_edge")
    if isinstance(size, int):
        return size, size
    if shortest and longest:
        return tuple(get_size_with_aspect_ratio((height, width), shortest, longest))
    if shortest:
        dummy = torch.empty(1, height, width).numpy()
        return tuple(get_resize_output_image_size(dummy, size=shortest, default_to_square=False, input_data_format="channels_first"))
    if size_value(size, "max_height") and size_value(size, "max_width"):
        return tuple(get_image_size_for_max_height_width((height, width), size["max_height"], size["max_width"]))
    return size_value(size, "height"), size_value(size, "width")


def single_view_window(image_processor: Any, height: int, width: int) -> ViewWindow:
    """The window of a ``[pad to square] -> resize -> [centre crop]`` processor."""
    window = ViewWindow.full(height, width)
    if getattr(image_processor, "do_pad", False):
        window = window.pad_to_square()
    return resize_and_crop(image_processor, window)


def resize_and_crop(image_processor: Any, window: ViewWindow) -> ViewWindow:
    """``window`` after the processor's resize and optional centre crop."""
    if getattr(image_processor, "do_resize", True):
        window = window.resize(*resized_shape(image_processor, window.rows, window.cols))
    if getattr(image_processor, "do_center_crop", False):
        crop = image_processor.crop_size
        rows, cols = size_value(crop, "height"), size_value(crop, "width")
        window = window.crop((window.rows - rows) // 2, (window.cols - cols) // 2, rows, cols)
    return window


class LlavaAdapter(HFAdapter):
    """``LlavaForConditionalGeneration``: pixel_values ``(1, 3, S, S)`` from a single view."""

    model_types = ("llava",)
    model_class = "LlavaForConditionalGeneration"

    def geometry(self, image: Image.Image, prepared: PreparedPair) -> ViewWindow:
        window = single_view_window(self.processor.image_processor, image.height, image.width)
        shape = tuple(prepared.image["pixel_values"].shape[-2:])
        if shape != (window.rows, window.cols):
            raise RuntimeError(
                f"the image processor produced {shape} pixels where its settings predict "
                f"{(window.rows, window.cols)}: this processor's geometry is not supported by {type(self).__name__}"
            )
        prepared.guide = (prepared.image["pixel_values"][:1], window)
        return window

    def project_mask(self, mask: Tensor, prepared: PreparedPair) -> dict[str, Tensor]:
        weight = sample_mask(mask, prepared.geometry, prepared.image_size)  # (N, 1, S, S)
        return {"pixel_values": weight[:, None]}  # against (1, 3, S, S)
