"""``--optim.batch_size auto``: the largest batch of composites that fits, measured once per run.

On a GPU the probe runs what the optimisation runs, a forward and backward pass of deletion
composites through the model, at batch sizes 1, 2, 4, ... up to a cap (the most composites any
one call of the method evaluates, and at most :data:`PROBE_CAP`), and keeps the largest that ran
without running out of memory. It runs once, on the run's first pair (its image sets the sequence
length of dynamic-resolution models); a later pair that does not fit still halves its batch on
out-of-memory (:func:`lvlm_heat.explainer.in_chunks`). On the CPU memory is rarely the limit and
a probe would cost minutes, so ``auto`` is :data:`CPU_BATCH_SIZE`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from PIL import Image

from lvlm_heat.config import ExplainConfig
from lvlm_heat.errors import LvlmHeatError

log = logging.getLogger(__name__)

CPU_BATCH_SIZE = 16
"""What ``auto`` means on the CPU (no probe)."""
PROBE_CAP = 64
"""The largest batch the probe tries."""
PROBE_QUESTION = "What is in the image?"


def probe_sizes(cap: int) -> list[int]:
    """The batch sizes tried, in order: powers of two below ``cap``, then ``cap``.

    >>> probe_sizes(20)
    [1, 2, 4, 8, 16, 20]
    """
    sizes = [1]
    while sizes[-1] * 2 < cap:
        sizes.append(sizes[-1] * 2)
    return sizes + [cap] if cap > 1 else sizes


def largest_fitting(step: Callable[[int], None], cap: int = PROBE_CAP) -> int:
    """The largest of :func:`probe_sizes` for which ``step(batch_size)`` runs without running out of memory.

    Sizes are tried upwards and the probe stops at the first that does not fit.

    Raises:
        LvlmHeatError: Not even one composite fits.
    """
    fits = 0
    for size in probe_sizes(max(1, cap)):
        try:
            step(size)
        except torch.OutOfMemoryError:
            break
        fits = size
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # what the failed size cached goes back
    if not fits:
        raise LvlmHeatError("out of memory at batch size 1: try --gradient_checkpointing true, --precision bf16, "
                            "or a smaller image")
    return fits


def most_composites(config: ExplainConfig) -> int:
    """The most composites one call of the method evaluates: an iteration's path points, a curve's
    inner steps, the ``evidence`` rule's sweep or the warm start's (:data:`PROBE_CAP` with per-word
    maps, whose iterations grow with the number of words)."""
    if config.maps == "per_word":
        return PROBE_CAP
    terms = 2 * config.optim.masks  # deletion and insertion, of each mask (and their product: see score_terms)
    warm = config.optim.warm_windows ** 2 if config.optim.warm_start > 0 else 0
    return max(terms * config.optim.ig_iter, config.optim.curve_steps - 1, config.select.windows ** 2, warm)


def probe_step(adapter, prepared, mask_shape: tuple[int, int]) -> Callable[[int], None]:
    """``step(n)``: one forward and backward pass of ``n`` deletion composites, as an iteration runs them."""
    from lvlm_heat.adapters.base import blend

    def step(count: int) -> None:
        mask = torch.full((count, 1, *mask_shape), 0.5, device=adapter.device, requires_grad=True)
        pixels = blend(prepared, adapter.project_mask(mask, prepared), insertion=False)
        adapter.answer_log_probs(prepared, pixels).sum().backward()
        if adapter.device.type == "cuda":
            torch.cuda.synchronize(adapter.device)

    return step


def measure_batch_size(adapter, config: ExplainConfig, image: Image.Image | None = None,
                       question: str | None = None) -> int:
    """Probe the largest batch that fits for ``image`` (default: a 1024 x 768 image) and ``question``,
    with an answer of ``config.max_new_tokens`` tokens (the longest the method explains)."""
    from lvlm_heat.baseline import make_baseline
    from lvlm_heat.geometry import mask_grid_shape

    image = (image or Image.new("RGB", (1024, 768), (128, 128, 128))).convert("RGB")
    ids = adapter.encode_answer("the image")
    answer_ids = ids.repeat(-(-config.max_new_tokens // max(1, ids.numel())))[: config.max_new_tokens]
    prepared = adapter.prepare(image, make_baseline(image, config.baseline), question or PROBE_QUESTION, answer_ids)
    grid = mask_grid_shape(prepared.image_size, config.optim.mask_size)
    return largest_fitting(probe_step(adapter, prepared, grid), min(PROBE_CAP, most_composites(config)))


def with_batch_size(adapter, config: ExplainConfig, image: Image.Image | None = None,
                    question: str | None = None) -> ExplainConfig:
    """``config`` with ``optim.batch_size`` ``auto`` resolved for ``adapter``'s device (unchanged otherwise).

    Call it once per run, before the first pair (the result holds a number, so later calls return it as
    it is): on a GPU it probes with ``image`` and ``question`` (see :func:`measure_batch_size`), on the
    CPU it is :data:`CPU_BATCH_SIZE`. The choice is logged.
    """
    if config.optim.batch_size != "auto":
        return config
    if adapter.device.type != "cuda":
        chosen = CPU_BATCH_SIZE
        log.warning("batch_size auto: %d on the CPU (no memory probe)", chosen)
    else:
        start = time.perf_counter()
        with torch.enable_grad():
            chosen = measure_batch_size(adapter, config, image, question)
        log.warning("batch_size auto: %d, the largest that fits on %s (probed in %.1f s)", chosen,
                    torch.cuda.get_device_name(adapter.device), time.perf_counter() - start)
    return replace(config, optim=replace(config.optim, batch_size=chosen))


__all__ = ["CPU_BATCH_SIZE", "PROBE_CAP", "largest_fitting", "measure_batch_size", "most_composites", "probe_sizes",
           "with_batch_size"]
