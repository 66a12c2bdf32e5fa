"""Shared processor geometry: how the resize, pad and crop of an HF image processor move a view.

Family adapters describe each pixel tensor as a :class:`~lvlm_heat.geometry.ViewWindow` on
the original image. The steps here read a Hugging Face image processor's own settings
(``size``, ``do_pad``, ``do_resize``, ``do_center_crop``, ``crop_size``) and apply the same
step to a window, with transformers' own size rules, so the window follows the processor.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.image_processing_backends import (
    get_image_size_for_max_height_width,
    get_resize_output_image_size,
    get_size_with_aspect_ratio,
)

from lvlm_heat.geometry import ViewWindow


def size_value(size: Any, key: str) -> int | None:
    """``size[key]`` of a processor's size setting, whether a dict or a ``SizeDict``; ``None`` when unset."""
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
        shape = get_resize_output_image_size(
            dummy, size=shortest, default_to_square=False, input_data_format="channels_first"
        )
        return tuple(shape)
    if size_value(size, "max_height") and size_value(size, "max_width"):
        return tuple(get_image_size_for_max_height_width((height, width), size["max_height"], size["max_width"]))
    return size_value(size, "height"), size_value(size, "width")


def resize_and_crop(image_processor: Any, window: ViewWindow) -> ViewWindow:
    """``window`` after the processor's resize and optional centre crop."""
    if getattr(image_processor, "do_resize", True):
        window = window.resize(*resized_shape(image_processor, window.rows, window.cols))
    if getattr(image_processor, "do_center_crop", False):
        crop = image_processor.crop_size
        rows, cols = size_value(crop, "height"), size_value(crop, "width")
        window = window.crop((window.rows - rows) // 2, (window.cols - cols) // 2, rows, cols)
    return window


def single_view_window(image_processor: Any, height: int, width: int) -> ViewWindow:
    """The window of a ``[pad to square] -> resize -> [centre crop]`` processor on a ``height x width`` image."""
    window = ViewWindow.full(height, width)
    if getattr(image_processor, "do_pad", False):
        window = window.pad_to_square()
    return resize_and_crop(image_processor, window)
