"""The generic adapter: geometry measured from the checkpoint's own processor.

Everything an image processor does to pixels before it rescales and normalises them is
geometric (resize, crop, pad, tiles, thumbnails, patch flattening, copies per encoder). With
rescaling and normalisation switched off and nearest-neighbour resampling, every output element
is a copy of one input pixel or padding. Grey probe images whose values encode their own
coordinates (the row modulo 256 in one probe, the column in another, the high digits in two more
for images over 256 pixels) then say, element by element, where the copy came from; a probe
holding the complement of the first marks padding (a constant ``c`` in both probes never adds up
to 255), and a random probe checks that the processor really resampled by nearest neighbour.

A nearest-neighbour pick is off by up to half a pixel of each resampling step. In image-shaped
tensors every view is a resize of a window on the image, so its source rows and columns lie on
lines; fitted to two smooth ramps the processor resamples its own way, they give each element's
centre to a fraction of a pixel, as a hand-written :class:`~lvlm_heat.geometry.ViewWindow` does.

The mask is read at those points (bilinear from the mask cells, the rule of
:func:`~lvlm_heat.geometry.sample_mask`) and blended (docs/method.md, 'Mask and composites'): exact at mask 1 and 0
by construction, and equal to processing the pixel-space composite up to resampling. Padding
takes the mask of the nearest image point in its view (I and B hold the same value there, so only
the pixels a resize mixes into it matter). Geometry and batching are measured once per image size.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from lvlm_heat.adapters.base import HFAdapter, PreparedPair, ProcessorGeometry
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.geometry import ViewWindow, fill_nearest, fit_lines, sample_mask_at

PADDING = -1  # source index of an element that shows no image pixel
DIGIT = 256  # values one 8-bit probe channel holds
Run = Callable[[list[Image.Image], list[str]], dict[str, Tensor]]


def raw_processor(processor: Any, nearest: bool = True) -> Any:
    """A shallow copy of ``processor`` whose image processor neither rescales nor normalises and, if
    ``nearest``, resamples by nearest neighbour (its own copy: ``processor`` is left untouched)."""
    from transformers.image_utils import PILImageResampling

    image_processor = copy.deepcopy(processor.image_processor)
    for name in list(vars(image_processor)):
        if name in ("do_rescale", "do_normalize"):
            setattr(image_processor, name, False)
        elif nearest and ("resample" in name or name == "interpolation"):
            setattr(image_processor, name, PILImageResampling.NEAREST)
    raw = copy.copy(processor)
    raw.image_processor = image_processor
    return raw


def grey(values: np.ndarray) -> Image.Image:
    """An RGB image with ``values`` ``(H, W)`` (0..255) in all three channels."""
    return Image.fromarray(np.repeat(values.astype(np.uint8)[..., None], 3, axis=-1))


def measure_sources(run: Run, prompt: str, size: tuple[int, int], keys: list[str]) -> dict[str, Tensor]:
    """For every element of every pixel tensor, the original pixel it shows.

    Args:
        run: Calls the raw processor (see :func:`raw_processor`) on images and prompts, returning
            its tensors by name.
        prompt: A prompt with one image placeholder.
        size: ``(H, W)`` of the image whose geometry is measured.
        keys: The pixel tensors to measure.

    Returns:
        Per key, ``(E,)`` long source indices ``row * W + col`` over the tensor's elements in
        memory order, :data:`PADDING` where the element shows no image pixel.

    Raises:
        LvlmHeatError: The processor's output is not a resampled copy of its input.
    """
    height, width = size
    if max(height, width) > DIGIT**2:
        raise LvlmHeatError(f"cannot measure the geometry of a {height} x {width} image: sides up to {DIGIT**2}")
    rows, cols = np.mgrid[0:height, 0:width]
    planes = {"row": rows % DIGIT, "col": cols % DIGIT, "check": DIGIT - 1 - rows % DIGIT,
              "random": np.random.default_rng(0).integers(0, DIGIT, size=(height, width))}
    if height > DIGIT:
        planes["row_high"] = rows // DIGIT
    if width > DIGIT:
        planes["col_high"] = cols // DIGIT
    outputs = {name: run([grey(plane)], [prompt]) for name, plane in planes.items()}
    sources = {}
    for key in keys:
        value = {name: output[key].flatten().double() for name, output in outputs.items()}
        row = value["row"] + DIGIT * value.get("row_high", 0)
        col = value["col"] + DIGIT * value.get("col_high", 0)
        whole = (row == row.round()) & (col == col.round())
        image = whole & (value["row"] + value["check"] == DIGIT - 1) & (row >= 0) & (row < height)
        image &= (col >= 0) & (col < width)
        index = torch.where(image, row * width + col, PADDING).long()
        shown = torch.from_numpy(planes["random"].reshape(-1)).double()[index.clamp(min=0)]
        copies = (shown == value["random"])[image]
        if image.sum() == 0 or copies.float().mean() < 0.999:
            raise LvlmHeatError(
                f"cannot measure where the processor puts the image in {key!r}: with rescaling and normalisation "
                "off and nearest-neighbour resampling its output is not a copy of input pixels (write a family "
                "adapter, docs/models.md 'Add your own model')"
            )
        sources[key] = index
    return sources


def measure_ramps(run: Run, prompt: str, size: tuple[int, int], keys: list[str]) -> dict[str, Tensor]:
    """For every element of every pixel tensor, its source point read from smooth ramps.

    ``run`` resamples the processor's own way (bilinear, bicubic, ...): those kernels reproduce a
    linear ramp, so away from the image's border an element reads the ramp at its true centre, to
    8-bit rounding (a fraction of a pixel for images up to 256 pixels, more beyond, unbiased).

    Returns:
        Per key, ``(E, 2)`` float64 ``(row, col)`` in original-image pixels; meaningless for padding
        and next to the image's border.
    """
    height, width = size
    rows, cols = np.mgrid[0:height, 0:width]
    steps = ((DIGIT - 1) / max(height - 1, 1), (DIGIT - 1) / max(width - 1, 1))  # ramp values per pixel
    outputs = [run([grey(np.round(plane * step))], [prompt]) for plane, step in zip((rows, cols), steps)]
    return {
        key: torch.stack([output[key].flatten().double() / step for output, step in zip(outputs, steps)], 1) + 0.5
        for key in keys
    }


def batching(run: Run, prompt: str, size: tuple[int, int]) -> tuple[dict[str, Tensor], str]:
    """How the processor batches: whether two images come out as the one-image tensors concatenated
    along dim 0, for every tensor it returns.

    That is how :meth:`~lvlm_heat.adapters.base.HFAdapter.batch_inputs` stacks composites (a batch
    dimension of one, or flattened patch rows as Qwen's).

    Returns:
        The processor's tensors for one probe image, and ``""`` when two concatenate, else which
        tensor grows otherwise.
    """
    probe = grey(np.random.default_rng(1).integers(0, DIGIT, size=size))
    one = run([probe], [prompt])
    try:
        two = run([probe, probe], [prompt, prompt])
    except (ValueError, TypeError, RuntimeError) as err:
        return one, f"it does not take two images at once ({type(err).__name__}: {str(err).strip()[:80]})"
    for key, value in one.items():
        if key not in two or not torch.equal(two[key], torch.cat([value, value])):
            grown = tuple(two[key].shape) if key in two else "nothing"
            return one, f"{key!r} is {tuple(value.shape)} for one image and {grown} for two"
    return one, ""


CACHED_SIZES = 4  # image sizes whose measured geometry is kept


@dataclass
class MeasuredGeometry:
    """Where every element of every pixel tensor comes from.

    Attributes:
        points: ``(P, 2)`` distinct source points ``(row, col)`` in original-image pixels (centres).
        index: Per pixel tensor, ``(E,)`` long: the point each element (memory order) shows.
        shapes: Per pixel tensor, its shape for one image.
        unbatchable: ``""`` when the processor batches images by concatenating their tensors along
            dim 0 (what :meth:`~lvlm_heat.adapters.base.HFAdapter.batch_inputs` does), else why not.
    """

    points: Tensor
    index: dict[str, Tensor]
    shapes: dict[str, torch.Size]
    unbatchable: str = ""


def nearest_points(sources: Tensor, shape: torch.Size, size: tuple[int, int]) -> Tensor:
    """``(E, 2)`` source points ``(row, col)``: the centres of the measured pixels.

    Padding takes the nearest image pixel in its view (tensors of three or more dimensions are
    taken to end in a view's rows and columns); an element with no image pixel in its view (or in
    a flat tensor) takes the image's centre pixel, where I and B agree on it either way.
    """
    height, width = size
    valid = sources != PADDING
    if len(shape) >= 3 and not valid.all():
        filled, valid = fill_nearest(sources.view(shape), valid.view(shape))
        sources, valid = filled.flatten(), valid.flatten()
    sources = torch.where(valid, sources, (height // 2) * width + width // 2)
    return torch.stack([sources // width, sources % width], dim=1).double() + 0.5


def source_points(sources: Tensor, ramps: Tensor, shape: torch.Size, size: tuple[int, int]) -> Tensor:
    """``(E, 2)`` source points ``(row, col)`` of a pixel tensor's elements, in original-image pixels.

    In an image-shaped tensor (three or more dimensions, ending in a view's rows and columns) each
    view is a resize of a window on the image, so its rows' source rows lie on a line over the row
    index, its columns' on one over the column index (:func:`~lvlm_heat.geometry.fit_lines`). The
    lines give every element's centre to a fraction of a pixel and put padding where the window
    reaches beyond the image, as :class:`~lvlm_heat.geometry.ViewWindow` does. They are fitted to the
    smooth ramps the processor resampled its own way (unbiased, away from the image's border, where
    resampling kernels reach past it), and checked against the nearest-neighbour pixels (off by up to
    half a pixel of each resampling step). Views that fit no line, and flat tensors, keep
    :func:`nearest_points`.

    Args:
        sources: ``(E,)`` measured source pixels (:func:`measure_sources`).
        ramps: ``(E, 2)`` smooth-ramp coordinates (:func:`measure_ramps`).
        shape: The tensor's shape.
        size: ``(H, W)`` of the image.
    """
    points = nearest_points(sources, shape, size)
    if len(shape) < 3:
        return points
    every = sources.view(-1, shape[-2] * shape[-1])
    # Channels (and repeated views) show the same pixels: fit each distinct view once.
    distinct, which = torch.unique(every, dim=0, return_inverse=True)
    first = torch.empty(len(distinct), dtype=torch.long).scatter_(0, which, torch.arange(len(every)))
    views = distinct.view(-1, *shape[-2:])
    ramps = ramps.view(len(every), -1, 2)[first].view(-1, 2)
    valid = views != PADDING
    nearest = ((views // size[1]).double() + 0.5, (views % size[1]).double() + 0.5)
    fits = [fit_lines(coordinate, valid, dim) for coordinate, dim in zip(nearest, (-2, -1))]
    # Half a source pixel, and half a view pixel per resampling step: how far a nearest pick may be off.
    bounds = [0.5 + slope.abs() + 1e-6 for _, slope, _ in fits]
    inner = valid  # away from every border of the image, where resampling kernels reach past it
    for coordinate, (_, slope, _), extent in zip(nearest, fits, size):
        margin = (2 + 2 * slope.abs())[:, None, None]
        inner = inner & (coordinate > margin) & (coordinate < extent - margin)
    best, usable = [], []
    for axis, ((lines, _, residual), bound, dim) in enumerate(zip(fits, bounds, (-2, -1))):
        smooth, _, smooth_residual = fit_lines(ramps[:, axis].view(views.shape), inner, dim)
        agree = smooth_residual.isfinite() & (((smooth - lines).abs() * valid).amax((1, 2)) <= bound)
        best.append(torch.where(agree[:, None, None], smooth, lines))
        usable.append(residual <= bound)
    fitted = (usable[0] & usable[1])[which, None, None].expand(len(every), *shape[-2:]).reshape(-1, 1)
    return torch.where(fitted, torch.stack(best, dim=-1)[which].view(-1, 2), points)


def distinct_points(points: Tensor, resolution: int = 256) -> tuple[Tensor, Tensor]:
    """The distinct ``(P, 2)`` points among ``(E, 2)`` (equal to ``1 / resolution`` of a pixel) and ``(E,)``
    the index of each element's: the mask is read once per point, however many channels, copies
    and views show it."""
    quantised = (points * resolution).round().long()
    low = quantised.amin(0)
    span = int(quantised[:, 1].max() - low[1]) + 1
    keys, inverse = torch.unique((quantised[:, 0] - low[0]) * span + quantised[:, 1] - low[1], return_inverse=True)
    first = torch.empty_like(keys).scatter_(0, inverse, torch.arange(len(points)))  # one element per distinct key
    return points[first], inverse


def guide_from(values: Tensor, sources: Tensor, size: tuple[int, int]) -> tuple[Tensor, ViewWindow]:
    """An image-shaped ``(1, 1, rows, cols)`` guide: the processed values put back where they came from.

    The grid has about as many cells as the tensor shows distinct pixels (at most the image's own);
    each cell is the mean of the elements that show a pixel inside it (all channels and views: the
    bilateral weights average channels anyway), empty cells take their nearest neighbour's value.
    """
    height, width = size
    shown = sources != PADDING
    pixels, values = sources[shown], values.flatten()[shown].float()
    scale = min(1.0, math.sqrt(pixels.unique().numel() / (height * width)))
    rows, cols = max(1, round(height * scale)), max(1, round(width * scale))
    cell = (pixels // width) * rows // height * cols + (pixels % width) * cols // width
    total = torch.zeros(rows * cols, dtype=torch.float64, device=values.device).index_add_(0, cell, values.double())
    count = torch.zeros(rows * cols, dtype=torch.float64, device=values.device).index_add_(
        0, cell, torch.ones_like(values, dtype=torch.float64)
    )
    mean, _ = fill_nearest((total / count.clamp(min=1)).view(rows, cols), (count > 0).view(rows, cols))
    return mean.float()[None, None], ViewWindow.full(height, width).resize(rows, cols)


class MeasuredAdapter(HFAdapter):
    """Any ``AutoModelForImageTextToText`` checkpoint whose processor is geometric.

    ``prepared.geometry`` is a :class:`MeasuredGeometry`. Checkpoints whose ``model_type`` has no
    family adapter get this one (see :func:`lvlm_heat.adapters.load_adapter`).
    """

    model_types = ()
    model_class = "AutoModelForImageTextToText"

    def __init__(self, model: torch.nn.Module, processor, name: str = "") -> None:
        super().__init__(model, processor, name)
        self._raw = {nearest: raw_processor(processor, nearest) for nearest in (True, False)}
        self._measured: OrderedDict[tuple[int, int], tuple[MeasuredGeometry, Tensor]] = OrderedDict()

    def _run_raw(self, images: list[Image.Image], prompts: list[str], nearest: bool = True) -> dict[str, Tensor]:
        """The raw processor's tensors for images (one per prompt)."""
        raw = self._raw[nearest]
        if len(images) == 1:
            return dict(raw(images=images[0], text=prompts[0], return_tensors="pt"))
        try:
            return dict(raw(images=images, text=prompts, return_tensors="pt"))
        except (ValueError, TypeError):  # processors that take one list of images per prompt
            return dict(raw(images=[[image] for image in images], text=prompts, return_tensors="pt"))

    def measure(self, prompt: str, size: tuple[int, int], keys: list[str]) -> tuple[MeasuredGeometry, Tensor]:
        """The geometry for a ``size`` image (cached per size) and the raw sources of the first key (for the guide)."""
        if size in self._measured:
            self._measured.move_to_end(size)
            return self._measured[size]
        raw = measure_sources(self._run_raw, prompt, size, keys)
        one, unbatchable = batching(self._run_raw, prompt, size)
        shapes = {key: one[key].shape for key in keys}
        ramps = measure_ramps(lambda images, prompts: self._run_raw(images, prompts, nearest=False), prompt, size, keys)
        located = [source_points(raw[key], ramps[key], shapes[key], size) for key in keys]
        points, inverse = distinct_points(torch.cat(located))
        index = dict(zip(keys, inverse.split([len(found) for found in located])))
        self._measured[size] = (MeasuredGeometry(points, index, shapes, unbatchable), raw[keys[0]])
        while len(self._measured) > CACHED_SIZES:
            self._measured.popitem(last=False)
        return self._measured[size]

    def geometry(self, image: Image.Image, prepared: PreparedPair) -> ProcessorGeometry:
        """A :class:`MeasuredGeometry`; the guide is the first pixel tensor put back on a grid over the image."""
        keys = list(prepared.image)
        if not keys:
            raise LvlmHeatError(f"the processor of {self.name or 'this model'} returned no pixel tensor for the image")
        size = (image.height, image.width)
        measured, first_sources = self.measure(self.chat_prompt("?"), size, keys)
        for key in keys:
            if tuple(prepared.image[key].shape) != tuple(measured.shapes[key]):
                raise LvlmHeatError(
                    f"the processor made {key!r} {tuple(prepared.image[key].shape)} for the image but "
                    f"{tuple(measured.shapes[key])} for a probe of its size: its geometry depends on the content"
                )
        device = prepared.image[keys[0]].device
        geometry = MeasuredGeometry(
            measured.points.to(device), {k: v.to(device) for k, v in measured.index.items()}, measured.shapes,
            measured.unbatchable,
        )
        return ProcessorGeometry(geometry, guide_from(prepared.image[keys[0]], first_sources.to(device), size))

    def project_mask(self, mask: Tensor, prepared: PreparedPair) -> dict[str, Tensor]:
        geometry: MeasuredGeometry = prepared.geometry
        values = sample_mask_at(mask, geometry.points[:, 0], geometry.points[:, 1], prepared.image_size)  # (N, P)
        return {key: values[:, index].view(-1, *geometry.shapes[key]) for key, index in geometry.index.items()}

    def batch_inputs(self, prepared: PreparedPair, pixels: dict[str, Tensor], count: int) -> dict[str, Tensor]:
        """The default concatenation, once the processor was measured to batch that way."""
        why = (prepared.parts[0] if prepared.parts else prepared).geometry.unbatchable
        if why and count > 1:
            raise LvlmHeatError(
                f"cannot batch composites for {self.name or 'this model'}: its processor does not batch images by "
                f"concatenation ({why}); use batch_size 1"
            )
        return super().batch_inputs(prepared, pixels, count)


class PaliGemmaAdapter(MeasuredAdapter):
    """PaliGemma: geometry measured; the prompt is the question right after the image.

    Its checkpoints have no chat template: the processor itself puts ``<bos>`` after the image
    tokens and a newline after the prompt, and the model answers in its prefix-LM suffix (token
    type 1, see :meth:`~lvlm_heat.adapters.base.HFAdapter.answer_tags`). Task prefixes ("answer en",
    "caption en", ...) belong in the question.
    """

    model_types = ("paligemma",)

    def chat_prompt(self, question: str, image: bool = True, images: int = 1) -> str:
        if getattr(self.processor, "chat_template", None):
            return super().chat_prompt(question, image, images)
        return f"{self.processor.image_token * images if image else ''}{question}"

    def text_only_log_probs(self, question: str, answer_ids: Tensor) -> Tensor | None:
        """``None``: PaliGemma's processor requires an image (and its prefix-LM, the image's token types)."""
        return None
