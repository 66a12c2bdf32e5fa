"""Where a processed view's pixels come from in the original image (METHOD.md section 4).

A Hugging Face image processor pads, resizes and crops; each step only moves the
window of the original image a view looks at and changes its resolution. A
:class:`ViewWindow` tracks that window, and :func:`sample_mask` reads the coarse mask
(defined over the whole original image) at the centre of every pixel of the view,
bilinearly. Adapters describe their processor's geometry with these two pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def mask_grid_shape(image_size: tuple[int, int], cells: int) -> tuple[int, int]:
    """Mask cells ``(h, w)``: ``cells`` on the image's long side, in proportion on the short one."""
    height, width = image_size
    long_side = max(height, width)
    return max(1, round(cells * height / long_side)), max(1, round(cells * width / long_side))
