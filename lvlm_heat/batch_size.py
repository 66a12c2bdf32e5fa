"""``--optim.batch_size auto``: the largest batch of composites that fits, measured once per loaded model.

On a GPU the probe runs what the optimisation runs, a forward and backward pass of deletion
composites through the model, at batch sizes 1, 2, 4, ... up to a cap (the most composites any
one call of the method evaluates, and at most :data:`PROBE_CAP`), and keeps the largest that ran
without running out of memory. It runs once per loaded model, on the first pair's own processed
inputs (its image sets the sequence length of dynamic-resolution models); a later pair that does
not fit still halves its batch on out-of-memory (:func:`lvlm_heat.scorer.in_chunks`). On the CPU
memory is rarely the limit and a probe would cost minutes, so ``auto`` is :data:`CPU_BATCH_SIZE`.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable

import torch

from lvlm_heat.adapters.base import Adapter, PreparedPair
from lvlm_heat.config import ExplainConfig
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.scorer import CompositeScorer

log = logging.getLogger(__name__)

CPU_BATCH_SIZE = 16
"""What ``auto`` means on the CPU (no probe)."""
PROBE_CAP = 64
"""The largest batch the probe tries."""


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
    """The most composites one call of the method evaluates: an iteration's path points, a curve's inner
    steps, the ``evidence`` rule's sweep or the warm start's (:data:`PROBE_CAP` with per-word maps, whose
    iterations grow with the number of words)."""
    if config.maps == "per_word":
        return PROBE_CAP
    terms = 2 * config.optim.masks  # deletion and insertion, of each mask (and their product: see score_terms)
    start = config.warm_start
    warm = max(start.windows, start.fallback_windows) ** 2 if start.depth > 0 else 0
    return max(terms * config.optim.ig_iter, config.optim.curve_steps - 1, config.select.windows ** 2, warm)


def probe_step(scorer: CompositeScorer) -> Callable[[int], None]:
    """``step(n)``: one forward and backward pass of ``n`` deletion composites, as an iteration runs them."""
    adapter = scorer.adapter

    def step(count: int) -> None:
        mask = torch.full((count, scorer.images, *scorer.grid), 0.5, device=adapter.device, requires_grad=True)
        scorer.log_probs(scorer.composites(mask, insertion=False)).sum().backward()
        if adapter.device.type == "cuda":
            torch.cuda.synchronize(adapter.device)

    return step


_CHOSEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # adapter -> the batch size auto chose for it


def resolve_batch_size(adapter: Adapter, inputs: PreparedPair, config: ExplainConfig) -> int:
    """``optim.batch_size`` as a number: as set, or for ``auto`` the choice made for ``adapter``'s model.

    ``auto`` is decided once per loaded model, on the first pair it explains: on a GPU by probing with that
    pair's own processed inputs (:func:`largest_fitting`, up to :func:`most_composites`), on the CPU
    :data:`CPU_BATCH_SIZE`. The choice is logged.
    """
    if config.optim.batch_size != "auto":
        return config.optim.batch_size
    if adapter in _CHOSEN:
        return _CHOSEN[adapter]
    if adapter.device.type != "cuda":
        chosen = CPU_BATCH_SIZE
        log.warning("batch_size auto: %d on the CPU (no memory probe)", chosen)
    else:
        start = time.perf_counter()
        scorer = CompositeScorer(adapter, inputs, config.optim.mask_size, 1)
        with torch.enable_grad():
            chosen = largest_fitting(probe_step(scorer), min(PROBE_CAP, most_composites(config)))
        log.warning("batch_size auto: %d, the largest that fits on %s (probed in %.1f s)", chosen,
                    torch.cuda.get_device_name(adapter.device), time.perf_counter() - start)
    _CHOSEN[adapter] = chosen
    return chosen


__all__ = ["CPU_BATCH_SIZE", "PROBE_CAP", "largest_fitting", "most_composites", "probe_sizes", "probe_step",
           "resolve_batch_size"]
