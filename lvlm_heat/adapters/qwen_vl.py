"""Qwen2-VL and Qwen2.5-VL: dynamic resolution, flattened patch sequences.

The processor resizes the image to ``(h, w)``, multiples of ``patch_size * merge_size``
within a pixel budget (``smart_resize``), normalises it and flattens it into
``(h w / patch^2, C * temporal * patch^2)`` rows, grouped by ``merge_size`` blocks, with
``image_grid_thw`` ``(1, 3)``. The mask is read on the resized grid (one
:class:`ViewWindow`) and flattened by the processor's own ``patchify`` applied to a
map of element indices, so its layout follows the processor whatever it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from lvlm_heat.adapters.base import HFAdapter, PreparedPair, ProcessorGeometry
from lvlm_heat.geometry import ViewWindow, sample_mask


@dataclass
class FlatGeometry:
    """A resized view and, for every element of the flattened pixel tensor, its source index."""

    window: ViewWindow
    index: Tensor  # (patches, dim) long: channel * rows * cols + row * cols + col
    channels: int


def patch_index(image_processor, channels: int, rows: int, cols: int) -> Tensor:
    """Run the processor's ``patchify`` on a map of element indices: ``(patches, dim)`` long."""
    index = np.arange(channels * rows * cols, dtype=np.float32).reshape(channels, rows, cols)
    sizes = (image_processor.patch_size, image_processor.merge_size, image_processor.temporal_patch_size)
    try:  # PIL backend: one (C, H, W) numpy image
        flat = image_processor.patchify(index, *sizes)[0]
    except (ValueError, TypeError, AttributeError):  # torchvision backend: a (B, C, H, W) tensor
        flat = image_processor.patchify(torch.from_numpy(index)[None], *sizes)[0][0]
    return torch.as_tensor(np.asarray(flat)).round().long()


class QwenVLAdapter(HFAdapter):
    """``Qwen2VLForConditionalGeneration`` and ``Qwen2_5_VLForConditionalGeneration``."""

    model_types = ("qwen2_vl", "qwen2_5_vl")
    model_class = "AutoModelForImageTextToText"
    image_processor_types = ("Qwen2VLImageProcessor",)

    def geometry(self, image: Image.Image, prepared: PreparedPair) -> ProcessorGeometry:
        """A :class:`FlatGeometry`; the guide is the flattened image put back on its ``(1, C, rows, cols)`` grid."""
        image_processor = self.processor.image_processor
        _, grid_h, grid_w = prepared.fixed["image_grid_thw"][0].tolist()
        rows, cols = grid_h * image_processor.patch_size, grid_w * image_processor.patch_size
        pixels = prepared.image["pixel_values"]
        dim = pixels.shape[-1]
        channels = dim // (image_processor.temporal_patch_size * image_processor.patch_size**2)
        index = patch_index(image_processor, channels, rows, cols).to(pixels.device)
        if index.shape != pixels.shape:
            raise RuntimeError(
                f"patch layout {tuple(index.shape)} does not match the processor's {tuple(pixels.shape)}"
            )
        geometry = FlatGeometry(ViewWindow.full(image.height, image.width).resize(rows, cols), index, channels)
        guide = torch.zeros(channels * rows * cols, device=pixels.device)
        guide[index.flatten()] = pixels.flatten().float()
        return ProcessorGeometry(geometry, (guide.view(1, channels, rows, cols), geometry.window))

    def project_mask(self, mask: Tensor, prepared: PreparedPair) -> dict[str, Tensor]:
        geometry: FlatGeometry = prepared.geometry
        spatial = sample_mask(mask, geometry.window, prepared.image_size).flatten(1)  # (N, rows * cols)
        plane = geometry.window.rows * geometry.window.cols
        return {"pixel_values": spatial[:, geometry.index % plane]}  # (N, patches, dim)
