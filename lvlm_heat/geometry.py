"""Where a processed view's pixels come from in the original image (docs/method.md, 'Mask and composites').

A Hugging Face image processor pads, resizes and crops; each step only moves the
window of the original image a view looks at and changes its resolution. A
:class:`ViewWindow` tracks that window, and :func:`sample_mask` reads the coarse mask
(defined over the whole original image) at the centre of every pixel of the view,
bilinearly. Adapters describe their processor's geometry with these two pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class ViewWindow:
    """A ``rows x cols`` pixel grid spanning a rectangle of the original image.

    ``top``, ``left``, ``height`` and ``width`` are in original-image pixels and may reach
    outside the image (padding). Pixel ``(i, j)`` of the view has its centre at
    ``(top + (i + 0.5) * height / rows, left + (j + 0.5) * width / cols)``.
    """

    top: float
    left: float
    height: float
    width: float
    rows: int
    cols: int

    @classmethod
    def full(cls, height: int, width: int) -> ViewWindow:
        """The original image itself."""
        return cls(0.0, 0.0, float(height), float(width), height, width)

    def resize(self, rows: int, cols: int) -> ViewWindow:
        """Resampled to ``rows x cols`` (PIL and torch both align pixel centres this way)."""
        return ViewWindow(self.top, self.left, self.height, self.width, rows, cols)

    def crop(self, top: int, left: int, rows: int, cols: int) -> ViewWindow:
        """A ``rows x cols`` crop at ``(top, left)`` in this view's pixels; negative offsets pad."""
        step_y, step_x = self.height / self.rows, self.width / self.cols
        return ViewWindow(self.top + top * step_y, self.left + left * step_x, rows * step_y, cols * step_x, rows, cols)

    def pad_to_square(self) -> ViewWindow:
        """Centred padding to a square, as LLaVA's ``expand2square``."""
        side = max(self.rows, self.cols)
        return self.crop(-((side - self.rows) // 2), -((side - self.cols) // 2), side, side)


def _lerp_indices(centres: Tensor, extent: float, cells: int) -> tuple[Tensor, Tensor, Tensor]:
    """Neighbouring cell indices and blend fraction for pixel ``centres`` along one axis."""
    position = (centres * (cells / extent) - 0.5).clamp(0, cells - 1)
    low = position.floor().long()
    return low, (low + 1).clamp(max=cells - 1), position - low


def sample_mask(mask: Tensor, window: ViewWindow, image_size: tuple[int, int]) -> Tensor:
    """Read a coarse mask at the pixel centres of a view.

    Bilinear between cell centres and constant beyond them, written as ``a + t (b - a)`` so
    that a constant mask reads back exactly that constant (the composite at mask 1 is then
    exactly the processed image).

    Args:
        mask: ``(N, 1, h, w)`` mask cells spanning the whole original image.
        window: The view's pixel grid on the original image.
        image_size: ``(H, W)`` of the original image.

    Returns:
        ``(N, 1, rows, cols)`` mask values.
    """
    height, width = image_size
    options = dict(device=mask.device, dtype=torch.float64)
    ys = window.top + (torch.arange(window.rows, **options) + 0.5) * (window.height / window.rows)
    xs = window.left + (torch.arange(window.cols, **options) + 0.5) * (window.width / window.cols)
    top, bottom, ty = _lerp_indices(ys, height, mask.shape[-2])
    left, right, tx = _lerp_indices(xs, width, mask.shape[-1])
    ty, tx = ty.to(mask.dtype)[:, None], tx.to(mask.dtype)
    rows = torch.lerp(mask[..., top, :], mask[..., bottom, :], ty)
    return torch.lerp(rows[..., left], rows[..., right], tx)


def upsample_to_image(mask: Tensor, image_size: tuple[int, int]) -> Tensor:
    """``(N, 1, h, w)`` cells to ``(N, 1, H, W)`` over the original image, bilinear."""
    return sample_mask(mask, ViewWindow.full(*image_size), image_size)


def grid_to_image(grid: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """A map on the mask's ``(h, w)`` cells over the original image ``(H, W)``, bilinearly, as float32 (the
    saliency a grid stands for; a map already of the image's size comes back as it is).

    Example:
        >>> grid_to_image(np.array([[0.0, 1.0]], np.float32), (1, 4)).tolist()
        [[0.0, 0.25, 0.75, 1.0]]
    """
    if tuple(grid.shape) == tuple(image_size):
        return np.asarray(grid, dtype=np.float32)
    cells = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[None, None]
    return upsample_to_image(cells, image_size)[0, 0].numpy()


def mask_grid_shape(image_size: tuple[int, int], cells: int) -> tuple[int, int]:
    """Mask cells ``(h, w)``: ``cells`` on the image's long side, in proportion on the short one."""
    height, width = image_size
    long_side = max(height, width)
    return max(1, round(cells * height / long_side)), max(1, round(cells * width / long_side))


def sample_mask_at(mask: Tensor, ys: Tensor, xs: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Read a coarse mask at arbitrary points of the original image, as :func:`sample_mask` does.

    The same bilinear rule, in the same order of operations, so a point at a view pixel's centre
    reads bit for bit what :func:`sample_mask` gives there, and a constant mask reads back exactly.

    Args:
        mask: ``(N, 1, h, w)`` mask cells spanning the whole original image.
        ys: ``(P,)`` rows of the points, in original-image pixels (a pixel's centre is ``i + 0.5``).
        xs: ``(P,)`` columns of the points.
        image_size: ``(H, W)`` of the original image.

    Returns:
        ``(N, P)`` mask values, differentiable in ``mask``.
    """
    height, width = image_size
    top, bottom, ty = _lerp_indices(ys.to(torch.float64), height, mask.shape[-2])
    left, right, tx = _lerp_indices(xs.to(torch.float64), width, mask.shape[-1])
    ty, tx = ty.to(mask.dtype), tx.to(mask.dtype)
    cells = mask.flatten(1)  # (N, h * w)
    cols = mask.shape[-1]
    upper_left, upper_right = cells[:, top * cols + left], cells[:, top * cols + right]
    lower_left, lower_right = cells[:, bottom * cols + left], cells[:, bottom * cols + right]
    return torch.lerp(torch.lerp(upper_left, lower_left, ty), torch.lerp(upper_right, lower_right, ty), tx)


def fill_nearest(index: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Give invalid entries of a grid the value of the nearest valid one, first along rows, then columns.

    Exact nearest-neighbour filling for the rectangular holes padding leaves (bands beside the
    image); a line without any valid entry stays invalid.

    Args:
        index: ``(..., h, w)`` values (any dtype).
        valid: ``(..., h, w)`` bool, where ``index`` holds a value.

    Returns:
        The filled values and where they are now valid, both ``(..., h, w)``.
    """
    for dim in (-1, -2):
        index, valid = _fill_along_last(index.transpose(dim, -1), valid.transpose(dim, -1))
        index, valid = index.transpose(dim, -1), valid.transpose(dim, -1)
    return index, valid


def _fill_along_last(values: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    length = values.shape[-1]
    position = torch.arange(length, device=values.device).expand_as(values)
    before = torch.where(valid, position, -1).cummax(-1).values  # last valid at or before, -1 if none
    after = torch.where(valid.flip(-1), position, -1).cummax(-1).values.flip(-1)  # same, counted from the end
    after = torch.where(after >= 0, length - 1 - after, -1)
    far = 2 * length
    gap_before = torch.where(before >= 0, position - before, far)
    gap_after = torch.where(after >= 0, after - position, far)
    source = torch.where(gap_before <= gap_after, before, after)
    filled = values.gather(-1, source.clamp(min=0))
    return torch.where(valid, values, filled), valid | (source >= 0)


def fit_lines(values: Tensor, valid: Tensor, dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """Least-squares lines ``a * t + b`` through per-view coordinates, ``t`` the index along ``dim``.

    A view that resizes a window of the image (:class:`ViewWindow`) has every row's source row on
    one such line (and every column's source column on one along the columns).

    Args:
        values: ``(S, h, w)`` measured coordinates of ``S`` views' elements.
        valid: ``(S, h, w)`` where they were measured.
        dim: ``-2`` (along rows) or ``-1`` (along columns).

    Returns:
        ``(S, h, w)`` the lines at every element, ``(S,)`` their slopes, and ``(S,)`` the largest
        distance of a measurement from its line, ``inf`` where fewer than two indices were measured.
    """
    index = torch.arange(values.shape[dim], dtype=torch.float64, device=values.device)
    t = index[:, None].expand(values.shape[-2:]) if dim == -2 else index[None, :].expand(values.shape[-2:])
    weight = valid.to(torch.float64)
    values = values.to(torch.float64)
    n, st, sv = weight.sum((1, 2)), (weight * t).sum((1, 2)), (weight * values).sum((1, 2))
    stt, stv = (weight * t * t).sum((1, 2)), (weight * t * values).sum((1, 2))
    det = n * stt - st * st
    slope = (n * stv - st * sv) / det.clamp(min=1e-12)
    offset = (sv - slope * st) / n.clamp(min=1)
    lines = slope[:, None, None] * t + offset[:, None, None]
    residual = ((lines - values).abs() * weight).amax((1, 2))
    return lines, slope, torch.where(det > 0.5, residual, torch.inf)
