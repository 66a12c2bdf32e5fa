"""Regions for the reference occlusion explainers: SLIC-like superpixels and a grid of square blocks.

:func:`slic` follows SLIC (Achanta et al., 2012, "SLIC Superpixels Compared to State-of-the-Art
Superpixel Methods"): k-means on (CIELAB colour, position) features of the lightly smoothed image,
seeded on a regular grid (each seed moved to the lowest colour gradient of its 3 x 3 neighbourhood,
so no seed sits on an edge), every pixel compared only with centres within ``2 S`` of it (``S`` the
grid step), the spatial distance weighted by ``compactness / S``; then connectivity is enforced, as
SLIC does, by merging components smaller than a quarter of the mean segment into adjacent ones (here
into the adjacent segment of the closest colour). It is written with torch, so the package needs no
scikit-image.

All regions live on a *work grid*: the image resized so its long side is at most ``max_side``
pixels (:func:`work_image`); a label map over the work grid spans the whole original image, as the
explainer's mask cells do, so the adapter maps it onto the model's input like any mask.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

WORK_SIDE = 256
"""Long side of the work grid for large images (regions finer than this gain nothing for ~50 segments)."""


def work_image(image: Image.Image, max_side: int = WORK_SIDE) -> Tensor:
    """The image on the work grid: ``(3, h, w)`` float in [0, 1], long side at most ``max_side``.

    Example:
        >>> work_image(Image.new("RGB", (600, 300)), 256).shape
        torch.Size([3, 128, 256])
    """
    scale = min(1.0, max_side / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = image.convert("RGB") if size == image.size else image.convert("RGB").resize(size, Image.BILINEAR)
    return torch.from_numpy(np.asarray(small, dtype=np.float32) / 255).permute(2, 0, 1).contiguous()


def grid_labels(shape: tuple[int, int], blocks: int = 8) -> Tensor:
    """``(h, w)`` labels of a ``blocks x blocks`` grid of (nearly) equal rectangles, in raster order.

    Example:
        >>> grid_labels((4, 4), 2).tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    """
    height, width = shape
    rows = torch.arange(height) * min(blocks, height) // height
    cols = torch.arange(width) * min(blocks, width) // width
    return rows[:, None] * min(blocks, width) + cols[None, :]


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB ``(3, h, w)`` in [0, 1] to CIELAB (D65) ``(3, h, w)``: L in [0, 100], a and b about [-128, 127]."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    to_xyz = torch.tensor([[0.412453, 0.357580, 0.180423],
                           [0.212671, 0.715160, 0.072169],
                           [0.019334, 0.119193, 0.950227]], dtype=rgb.dtype)
    xyz = torch.einsum("ij,jhw->ihw", to_xyz, linear)
    xyz = xyz / torch.tensor([0.950456, 1.0, 1.088754], dtype=rgb.dtype)[:, None, None]
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _seeds(lab: Tensor, segments: int) -> tuple[Tensor, float]:
    """``(K, 2)`` seed positions (row, col) on a regular grid, moved to the lowest gradient nearby; and ``S``."""
    _, height, width = lab.shape
    step = math.sqrt(height * width / max(1, segments))
    rows, cols = min(height, max(1, round(height / step))), min(width, max(1, round(width / step)))
    ys = ((torch.arange(rows) + 0.5) * height / rows).long().clamp(max=height - 1)
    xs = ((torch.arange(cols) + 0.5) * width / cols).long().clamp(max=width - 1)
    padded = F.pad(lab[None], (1, 1, 1, 1), mode="replicate")[0]
    vertical, horizontal = padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1], padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]
    gradient = (vertical**2 + horizontal**2).sum(0)
    seeds = []
    for y in ys.tolist():
        for x in xs.tolist():
            top, left = max(0, y - 1), max(0, x - 1)
            patch = gradient[top : y + 2, left : x + 2]
            k = int(patch.flatten().argmin())
            seeds.append((top + k // patch.shape[1], left + k % patch.shape[1]))
    return torch.tensor(seeds, dtype=lab.dtype), step


def slic(image: Tensor, segments: int = 50, compactness: float = 10.0, iterations: int = 10,
         sigma: float = 1.0) -> Tensor:
    """SLIC-like superpixels of an image (see the module's docstring).

    Args:
        image: ``(3, h, w)`` RGB in [0, 1] (the work grid, :func:`work_image`).
        segments: About how many segments.
        compactness: Weight ``m`` of the spatial distance (CIELAB units per grid step); higher gives
            squarer segments, lower follows colour more closely. SLIC's usual 10.
        iterations: k-means iterations.
        sigma: Gaussian smoothing (pixels) before clustering, as scikit-image's ``slic(sigma=...)``.

    Returns:
        ``(h, w)`` long labels ``0 .. n - 1``, every segment 4-connected.
    """
    image = image.float().cpu()
    if sigma > 0:  # per-pixel noise would otherwise outweigh the spatial term and shred the segments
        radius = max(1, math.ceil(3 * sigma))
        taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=image.dtype) ** 2) / (2 * sigma**2))
        taps = (taps / taps.sum()).view(1, 1, 1, -1).expand(3, 1, 1, -1)
        padded = F.pad(image[None], (radius, radius, 0, 0), mode="replicate")
        image = F.conv2d(padded, taps, groups=3)
        padded = F.pad(image, (0, 0, radius, radius), mode="replicate")
        image = F.conv2d(padded, taps.transpose(-1, -2), groups=3)[0]
    lab = rgb_to_lab(image)
    _, height, width = lab.shape
    seeds, step = _seeds(lab, segments)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=lab.dtype), torch.arange(width, dtype=lab.dtype), indexing="ij")
    position = torch.stack([ys.flatten(), xs.flatten()], 1)  # (P, 2)
    colour = lab.flatten(1).T  # (P, 3)
    centres = torch.cat([colour[(seeds[:, 0] * width + seeds[:, 1]).long()], seeds], 1)  # (K, 5)
    weight = (compactness / step) ** 2
    for _ in range(max(1, iterations)):
        dy = (position[:, :1] - centres[None, :, 3]).abs()  # (P, K)
        dx = (position[:, 1:] - centres[None, :, 4]).abs()
        squared = (colour**2).sum(1, keepdim=True) + (centres[:, :3] ** 2).sum(1) - 2 * colour @ centres[:, :3].T
        distance = squared + weight * (dy**2 + dx**2)
        # SLIC compares a pixel with nearby centres only: segments stay local whatever the colours.
        distance.masked_fill_(torch.maximum(dy, dx) > 2 * step, float("inf"))
        labels = distance.argmin(1)
        counts = torch.bincount(labels, minlength=len(centres)).to(lab.dtype)
        sums = torch.zeros_like(centres).index_add_(0, labels, torch.cat([colour, position], 1))
        filled = counts > 0  # an emptied centre keeps its place
        centres[filled] = sums[filled] / counts[filled, None]
    return enforce_connectivity(labels.view(height, width), lab, min_size=max(1, height * width // (4 * len(centres))))


def connected_components(labels: Tensor) -> Tensor:
    """``(h, w)`` ids of the 4-connected components of equal ``labels`` (each id: its smallest pixel index).

    Example:
        >>> connected_components(torch.tensor([[0, 1, 0], [0, 1, 0]])).tolist()
        [[0, 1, 2], [0, 1, 2]]
    """
    height, width = labels.shape
    component = torch.arange(height * width).view(height, width)
    same_down = labels[1:] == labels[:-1]
    same_right = labels[:, 1:] == labels[:, :-1]
    while True:  # propagate the smallest id through equal neighbours until nothing changes
        previous = component
        component = component.clone()
        for same, dim in ((same_down, 0), (same_right, 1)):
            length = component.shape[dim] - 1
            low, high = component.narrow(dim, 0, length), component.narrow(dim, 1, length)
            smaller = torch.where(same, torch.minimum(low, high), low)
            low.copy_(smaller)
            high.copy_(torch.where(same, torch.minimum(high, smaller), high))
        flat = component.flatten()
        component = flat[flat].view(height, width)  # pointer jumping: follow each id to its own id
        if torch.equal(component, previous):
            return component


def enforce_connectivity(labels: Tensor, colour: Tensor, min_size: int) -> Tensor:
    """Split segments into connected components, hand the pixels of components under ``min_size`` pixels
    to adjacent large components, and number the result ``0 .. n - 1``.

    Small components are eaten from their borders inwards, each pixel by the neighbouring large
    component whose mean colour is closest to its own (so a fragment of background is not handed to
    an object next to it); every segment stays connected.

    Args:
        labels: ``(h, w)`` k-means labels.
        colour: ``(C, h, w)`` the features the colours are compared in.
        min_size: Components smaller than this are merged.

    Example:
        >>> colour = torch.tensor([[[0.0, 0.0, 9.0], [0.0, 1.0, 9.0], [9.0, 9.0, 9.0]]])
        >>> enforce_connectivity(torch.tensor([[0, 0, 1], [0, 2, 1], [1, 1, 1]]), colour, min_size=2).tolist()
        [[0, 0, 1], [0, 0, 1], [1, 1, 1]]
    """
    height, width = labels.shape
    index = torch.unique(connected_components(labels), return_inverse=True)[1].flatten()
    sizes = torch.bincount(index)
    features = colour.flatten(1).T.double()  # (P, C)
    means = torch.zeros(len(sizes), features.shape[1], dtype=features.dtype).index_add_(0, index, features)
    means /= sizes[:, None]
    big = sizes >= min_size
    if not big.any():
        big = sizes == sizes.max()
    index, features = index.view(height, width), features.view(height, width, -1)
    known = big[index]
    while not known.all():  # one ring of unknown pixels per pass
        best_distance = torch.full(index.shape, float("inf"), dtype=features.dtype)
        best = index
        for dim, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            source = torch.roll(index, shift, dim)
            usable = ~known & torch.roll(known, shift, dim)
            usable.select(dim, 0 if shift == 1 else -1).fill_(False)  # roll wraps around: no neighbour there
            distance = torch.where(usable, ((features - means[source]) ** 2).sum(-1), float("inf"))
            better = distance < best_distance
            best_distance, best = torch.where(better, distance, best_distance), torch.where(better, source, best)
        reached = torch.isfinite(best_distance)
        index, known = torch.where(reached, best, index), known | reached
    return torch.unique(index, return_inverse=True)[1].view(height, width)
