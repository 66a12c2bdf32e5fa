"""The "image removed" reference B (docs/method.md, 'Baseline').

The default is a Gaussian blur so strong that only colour blobs remain. The paper sets its kernel
from a table of image widths (101 to 501 px, sigma = kernel - 1), made for images of a few hundred
pixels: on a 6000 x 4000 photo a 501-px kernel is a twelfth of the image and leaves objects
recognisable. The default (``blur``) keeps the paper's kernel shape but scales it with the image:
``max(101, 0.8 x long side)`` px, the ratio the table gives the small images it was tuned on (a
101-px kernel on a 128-px image), so that an object a quarter of the image wide is hidden at any
size, and an upscaled image gets the upscaled baseline (why not a smaller ratio: EXPERIMENTS.md).
Large images are blurred at a working size of at most 256 px on the long side and resized back (a blur
this wide has no detail that the working size could lose), so a 24-megapixel photo costs well under a
second.
``blur_table`` is the paper's rule, ``black`` and ``noise`` the paper's alternatives. ``median`` fills the whole
image with its median colour: a blur keeps a large object as a blob of its colour, the median of a scene
that the object does not fill is the colour around it (EXPERIMENTS.md, "a ceiling as the mask deletes").
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lvlm_heat.config import BaselineKind


def blur_kernel_size(width: int) -> int:
    """The paper's kernel side for an image ``width`` pixels wide: 501, 301, 201 or 101."""
    if width >= 2000:
        return 501
    if width >= 800:
        return 301
    if width >= 500:
        return 201
    return 101


BLUR_FRACTION = 0.8
"""Kernel side of the default blur, as a fraction of the image's long side (at least 101 px)."""
WORKING_SIDE = 256
"""Long side at which a large image is blurred before being resized back."""


def relative_kernel_size(height: int, width: int) -> int:
    """Kernel side of the default blur: ``max(101, 0.8 x long side)``, odd."""
    kernel = max(101, round(BLUR_FRACTION * max(height, width)))
    return kernel + 1 - kernel % 2


def scaled_blur(image: Image.Image, kernel: int) -> Image.Image:
    """:func:`gaussian_blur` with ``sigma = kernel - 1``, computed at :data:`WORKING_SIDE` for large images.

    Blurring at scale ``s`` with kernel ``s k`` and resizing back equals blurring at full size up to
    resampling error, which a kernel hundreds of pixels wide makes negligible.
    """
    scale = WORKING_SIDE / max(image.size)
    if scale >= 1:
        return gaussian_blur(image, kernel, sigma=kernel - 1)
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BOX)
    small_kernel = max(3, round(kernel * scale))
    small_kernel += 1 - small_kernel % 2
    blurred = gaussian_blur(small, small_kernel, sigma=(kernel - 1) * scale)
    return blurred.resize(image.size, Image.Resampling.BILINEAR)


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


def flat_fill(image: Image.Image, statistic: str = "flat") -> Image.Image:
    """One colour everywhere, which removes shapes and colours alike: the image's mean colour (``flat``) or its
    per-channel median (``median``, robust to a few strongly coloured objects).

    Example:
        >>> picture = Image.fromarray(np.array([[[0, 0, 0], [0, 0, 0], [255, 30, 90]]], np.uint8))
        >>> flat_fill(picture).getpixel((0, 0)), flat_fill(picture, "median").getpixel((0, 0))
        ((85, 10, 30), (0, 0, 0))
    """
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3)
    colour = np.median(pixels, axis=0) if statistic == "median" else pixels.mean(0)
    return Image.new("RGB", image.size, tuple(round(float(v)) for v in colour))


def make_baseline(image: Image.Image, kind: BaselineKind = "blur", seed: int = 0) -> Image.Image:
    """The baseline image B for ``image``, same size, RGB.

    Args:
        image: The original image I.
        kind: ``blur`` (default: scaled with the image), ``blur_table`` (the paper's kernel table),
            ``median`` (the image's per-channel median colour everywhere), ``black`` (zeros in pixel space) or
            ``noise`` (uniform, seeded).
        seed: Seed of the ``noise`` baseline.
    """
    image = image if image.mode == "RGB" else image.convert("RGB")
    if kind == "blur":
        return scaled_blur(image, relative_kernel_size(image.height, image.width))
    if kind == "blur_table":
        kernel = blur_kernel_size(image.width)
        return gaussian_blur(image, kernel, sigma=kernel - 1)
    if kind == "median":
        return flat_fill(image, "median")
    if kind == "black":
        return Image.new("RGB", image.size)
    if kind == "noise":
        rng = np.random.default_rng(seed)
        return Image.fromarray(rng.integers(0, 256, size=(image.height, image.width, 3), dtype=np.uint8))
    raise ValueError(f"unknown baseline {kind!r}: use 'blur', 'blur_table', 'median', 'black' or 'noise'")
