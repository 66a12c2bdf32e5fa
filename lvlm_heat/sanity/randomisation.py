"""Cascading parameter randomisation (Adebayo et al., 2018, "Sanity Checks for Saliency Maps").

A saliency map that explains the *model* must change when the model's parameters are destroyed.
The check re-initialises the model block by block from the top (the output head, then the last
layers, down to the vision encoder), re-explains the same answer at a few stages, and compares the
maps by rank correlation with the original one. A map that stays correlated reflects the image (its
edges, the baseline's colour blobs), not what the model computes.

Blocks are found without knowing the model's family (:func:`find_blocks`): the elements of every
outermost ``nn.ModuleList`` (the layer stacks of every encoder and decoder) and the output
embeddings, ordered by when they first run in one forward pass, so "top" means "last to run"
whatever order the modules were registered in. :class:`WeightSnapshot` keeps a copy of the weights
(on the CPU) and puts it back, bit for bit, however the check ends.

This module imports only torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def candidate_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks a cascade can randomise, in registration order.

    The elements of every ``nn.ModuleList`` not nested in another one, plus the output embeddings
    (``model.get_output_embeddings()``, where the model has them). A model with neither (a plain
    ``nn.Module``) gets every module that holds parameters of its own.
    """
    blocks: list[tuple[str, nn.Module]] = []
    inside: set[str] = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and not any(name.startswith(f"{outer}.") for outer in inside):
            inside.add(name)
            blocks += [(f"{name}.{key}", child) for key, child in module.named_children()]
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if isinstance(head, nn.Module) and not any(head is block for _, block in blocks):
        blocks.append((next(n for n, m in model.named_modules() if m is head), head))
    if not blocks:
        blocks = [(name or "(model)", m) for name, m in model.named_modules() if any(True for _ in m.parameters(False))]
    return [(name, block) for name, block in blocks if any(True for _ in block.parameters())]


def find_blocks(model: nn.Module, forward: Callable[[], object]) -> list[tuple[str, nn.Module]]:
    """The cascade: :func:`candidate_blocks` from the last to run to the first.

    Args:
        model: The model.
        forward: Runs one forward pass of ``model`` (e.g. scoring the image); its result is ignored.

    Returns:
        ``(name, block)`` pairs, the top of the model first. Blocks that did not run are left out
        (randomising them could not change the map).
    """
    blocks = candidate_blocks(model)
    order: dict[int, int] = {}

    def seen(k: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: object) -> None:  # returns None: the inputs stay as they are
            order.setdefault(k, len(order))

        return hook

    hooks = [block.register_forward_pre_hook(seen(k)) for k, (_, block) in enumerate(blocks)]
    try:
        with torch.no_grad():
            forward()
    finally:
        for hook in hooks:
            hook.remove()
    return [blocks[k] for k in sorted(order, key=order.get, reverse=True)]


def stage_counts(blocks: int, fractions: list[float]) -> list[int]:
    """How many blocks of the cascade each stage randomises: ``ceil(f * blocks)``, at least the top one.

    Example:
        >>> stage_counts(8, [0.0, 0.25, 0.5, 1.0])
        [1, 2, 4, 8]
    """
    return sorted({min(blocks, max(1, math.ceil(f * blocks - 1e-9))) for f in fractions})


@torch.no_grad()
def randomise_(parameters: list[nn.Parameter], generator: torch.Generator) -> None:
    """Re-initialise ``parameters`` in place with Gaussian noise of each one's own mean and std.

    Keeping each tensor's mean and spread keeps activations at their usual scale (a layer-norm gain
    stays near 1, a projection keeps its norm), so the randomised model still produces finite,
    non-degenerate outputs; only what was learnt is gone. A single number gets ``value * N(0, 1)``.
    The noise is drawn on the CPU from ``generator``: the same on every device.
    """
    for parameter in parameters:
        values = parameter.detach().float()
        noise = torch.randn(parameter.shape, generator=generator)
        if parameter.numel() > 1:
            fresh = values.mean().cpu() + values.std().cpu() * noise
        else:
            fresh = values.cpu() * noise
        parameter.copy_(fresh.to(device=parameter.device, dtype=parameter.dtype))


class WeightSnapshot:
    """A copy of a model's parameters on the CPU, put back exactly by :meth:`restore`.

    Example:
        >>> layer = nn.Linear(2, 2)
        >>> before = layer.weight.clone()
        >>> with WeightSnapshot(layer).kept():
        ...     randomise_(list(layer.parameters()), torch.Generator().manual_seed(0))
        >>> torch.equal(layer.weight, before)
        True
    """

    def __init__(self, model: nn.Module) -> None:
        self.parameters = dict(model.named_parameters())  # tied weights appear once
        self.saved = {name: p.detach().to("cpu", copy=True) for name, p in self.parameters.items()}

    @torch.no_grad()
    def restore(self) -> None:
        for name, parameter in self.parameters.items():
            parameter.copy_(self.saved[name].to(parameter.device))

    @contextmanager
    def kept(self) -> Iterator[WeightSnapshot]:
        """Restore the weights when the block ends, however it ends (an error, Ctrl-C)."""
        try:
            yield self
        finally:
            self.restore()


def ranks(values: Tensor) -> Tensor:
    """``(n,)`` 0-based ranks of ``values``, ties given their mean rank.

    Example:
        >>> ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist()
        [2.5, 0.0, 2.5, 1.0]
    """
    _, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0)
    return ((ends - counts + ends - 1).double() / 2)[inverse]


def spearman(first: Tensor, second: Tensor) -> float:
    """Spearman rank correlation of two maps of the same shape (``nan`` when either is constant).

    Example:
        >>> round(spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 30.0, 20.0])), 6)
        0.5
    """
    a, b = ranks(first.flatten().double()), ranks(second.flatten().double())
    a, b = a - a.mean(), b - b.mean()
    norm = float(a.norm() * b.norm())
    return float((a * b).sum() / norm) if norm > 0 else math.nan


def top_overlap(first: Tensor, second: Tensor, fraction: float = 0.1) -> float:
    """Share of the top ``fraction`` of ``first``'s cells that are also in ``second``'s top ``fraction``.

    Example:
        >>> top_overlap(torch.tensor([4.0, 3.0, 2.0, 1.0]), torch.tensor([4.0, 1.0, 2.0, 3.0]), 0.5)
        0.5
    """
    k = max(1, math.ceil(fraction * first.numel()))
    top_a = set(torch.topk(first.flatten().double(), k).indices.tolist())
    top_b = set(torch.topk(second.flatten().double(), k).indices.tolist())
    return len(top_a & top_b) / k
