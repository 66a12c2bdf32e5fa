"""The "image removed" reference B of METHOD.md section 1.

The default is a Gaussian blur so strong that only colour blobs remain; the kernel
grows with the image's width. ``black`` and ``noise`` are the paper's alternatives.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lvlm_heat.config import BaselineKind


def blur_kernel_size(width: int) -> int:
    """Kernel side for an image ``width`` pixels wide: 501, 301, 201 or 101."""
    if width >= 2000:
        return 501
    if width >= 800:
        return 301
    if width >= 500:
        return 201
    return 101


def gaussian_blur(image: Image.Image, kernel: int, sigma: float) -> Image.Image:
    """Separable Gaussian blur with replicated borders, any kernel larger than the image included."""
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)[None]
    offsets = torch.arange(kernel, dtype=torch.float32) - (kernel - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    weights = (weights / weights.sum()).expand(3, 1, kernel)
    half = kernel // 2
    rows = F.conv2d(F.pad(pixels, (half, half, 0, 0), mode="replicate"), weights[..., None, :], groups=3)
    both = F.conv2d(F.pad(rows, (0, 0, half, half), mode="replicate"), weights[..., :, None], groups=3)
    return Image.fromarray(both[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy())


def make_baseline(image: Image.Image, kind: BaselineKind = "blur", seed: int = 0) -> Image.Image:
    """The baseline image B for ``image``, same size, RGB.

    Args:
        image: The original image I.
        kind: ``blur`` (default), ``black`` (zeros in pixel space) or ``noise`` (uniform, seeded).
        seed: Seed of the ``noise`` baseline.
    """
    image = image.convert("RGB")
    if kind == "blur":
        kernel = blur_kernel_size(image.width)
        return gaussian_blur(image, kernel, sigma=kernel - 1)
    if kind == "black":
        return Image.new("RGB", image.size)
    if kind == "noise":
        rng = np.random.default_rng(seed)
        return Image.fromarray(rng.integers(0, 256, size=(image.height, image.width, 3), dtype=np.uint8))
    raise ValueError(f"unknown baseline {kind!r}: use 'blur', 'black' or 'noise'")
