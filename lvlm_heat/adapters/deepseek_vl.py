"""DeepSeek-VL-hybrid: two vision encoders, one image seen twice.

The processor resizes the longest side to the high-resolution size (SAM, 1024) and pads
to a square with the mean colour: ``high_res_pixel_values``; that square is then resized
to the low-resolution size (SigLIP, 384): ``pixel_values``. One mask, two windows: each
encoder's input gets its own copy, blended in its own normalisation.
"""

from __future__ import annotations

from typing import Any

from PIL import Image
from torch import Tensor

from lvlm_heat.adapters.base import HFAdapter, PreparedPair, ProcessorGeometry
from lvlm_heat.adapters.views import size_value
from lvlm_heat.geometry import ViewWindow, sample_mask


def _longest_side(window: ViewWindow, target: int, min_size: int) -> ViewWindow:
    scale = target / max(window.rows, window.cols)
    return window.resize(max(round(window.rows * scale), min_size), max(round(window.cols * scale), min_size))


def hybrid_windows(image_processor: Any, height: int, width: int) -> dict[str, ViewWindow]:
    """Windows of ``high_res_pixel_values`` and ``pixel_values``."""
    window = ViewWindow.full(height, width)
    pad = getattr(image_processor, "do_pad", True)
    min_size = getattr(image_processor, "min_size", 14)
    if getattr(image_processor, "do_resize", True):
        window = _longest_side(window, size_value(image_processor.high_res_size, "height"), min_size)
    if pad and getattr(image_processor, "do_resize", True):
        window = window.pad_to_square()
    high_res = window
    if getattr(image_processor, "do_resize", True):
        window = _longest_side(window, size_value(image_processor.size, "height"), min_size)
        if pad:
            window = window.pad_to_square()
    return {"high_res_pixel_values": high_res, "pixel_values": window}


class DeepseekVLHybridAdapter(HFAdapter):
    """``DeepseekVLHybridForConditionalGeneration``: a SigLIP view and a SAM view."""

    model_types = ("deepseek_vl_hybrid",)
    model_class = "AutoModelForImageTextToText"
    image_processor_types = ("DeepseekVLHybridImageProcessor",)

    def geometry(self, image: Image.Image, prepared: PreparedPair) -> ProcessorGeometry:
        """A window per pixel tensor, by model-input name; the low-resolution view is the guide."""
        windows = hybrid_windows(self.processor.image_processor, image.height, image.width)
        for key, window in windows.items():
            shape = tuple(prepared.image[key].shape[-2:])
            if shape != (window.rows, window.cols):
                raise RuntimeError(
                    f"{key}: the processor produced {shape}, its settings predict {(window.rows, window.cols)}"
                )
        return ProcessorGeometry(windows, (prepared.image["pixel_values"], windows["pixel_values"]))

    def project_mask(self, mask: Tensor, prepared: PreparedPair) -> dict[str, Tensor]:
        return {
            key: sample_mask(mask, window, prepared.image_size)[:, None]  # (N, 1, 1, S, S) against (1, 3, S, S)
            for key, window in prepared.geometry.items()
        }
