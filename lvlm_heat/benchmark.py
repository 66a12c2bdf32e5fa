"""How fast is an explanation, and how much of it is the model? ``python -m lvlm_heat.benchmark``.

For one pair it measures, in one run:

- the full method: wall time of the optimisation and of the two curves, per iteration and per
  pair, with the composites evaluated in batches of ``batch_size``;
- the bare model: the same number of composites as plain batched forward + backward passes
  (optimisation) and forward passes (curves) at the same batch size, with nothing else;
- the same method evaluating one composite at a time (``batch_size 1``).

``overhead_ratio`` = full method / bare model passes (everything that is not the model);
``speedup_vs_sequential`` = one-at-a-time / batched. The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from lvlm_heat.adapters.base import HFAdapter
from lvlm_heat.api import Explainer
from lvlm_heat.baseline import make_baseline
from lvlm_heat.config import DataConfig, ExplainConfig, Precision, SelectionConfig
from lvlm_heat.data import load_image, read_dataset
from lvlm_heat.geometry import mask_grid_shape
from lvlm_heat.one_pair import explain_pair


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_passes(adapter: HFAdapter, prepared, composites: int, batch_size: int, backward: bool) -> float:
    """Seconds for ``composites`` plain model passes in chunks of ``batch_size``."""
    steps = prepared.answer_ids.numel()
    device = adapter.device
    _sync(device)
    start = time.perf_counter()
    for first in range(0, composites, batch_size):
        count = min(batch_size, composites - first)
        pixels = {k: v.expand(count, *v.shape).clone().requires_grad_(backward) for k, v in prepared.image.items()}
        with torch.set_grad_enabled(backward):
            logits = adapter.model(**adapter.batch_inputs(prepared, pixels, count), logits_to_keep=steps, use_cache=False).logits
            if backward:
                logits.float().sum().backward()
    _sync(device)
    return time.perf_counter() - start


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def benchmark(
    model: str = "demo",
    image: Path | None = None,
    question: str | None = None,
    answer: str | None = None,
    explain: ExplainConfig | None = None,
    repeats: int = 3,
    sequential: bool = True,
    device: str = "auto",
    precision: Precision = "auto",
    gradient_checkpointing: bool = False,
) -> dict:
    """Time one pair (default: the first demo pair) with the full method and with bare model passes.

    Args:
        model: Hub id, local folder or ``demo``.
        image: Image of the pair; default the first demo pair's.
        question: Its question.
        answer: Fixed answer; default the model's own.
        explain: The explanation settings, as for ``train.py`` (``--optim.batch_size``, ...); every
            answer token is explained, since the cost does not depend on which.
        repeats: Timed repetitions; medians are reported.
        sequential: Also time one composite at a time (slow on large models).
        device: ``auto``, ``cpu``, ``cuda``.
        precision: ``auto``, ``fp32``, ``bf16``, ``fp16``.
        gradient_checkpointing: Recompute activations in the backward pass.
    """
    if image is None:
        pair = read_dataset(DataConfig())[0]
        image, question = pair.image, question or pair.question
    picture = load_image(image)
    explainer = Explainer(model, device=device, precision=precision, gradient_checkpointing=gradient_checkpointing)
    adapter = explainer.adapter
    config = replace(explain or ExplainConfig(), select=SelectionConfig(rule="all"))
    optim = config.optim
    iterations, ig_iter, batch_size = optim.iterations, optim.ig_iter, optim.batch_size

    def method(cfg: ExplainConfig) -> dict[str, float]:
        runs = [explain_pair(adapter, picture, question, answer=answer, config=cfg) for _ in range(repeats)]
        return {
            key: statistics.median(r.seconds if key == "pair" else r.timings[key] for r in runs)
            for key in ("pair", "optimise", "curves")
        }

    explain_pair(adapter, picture, question, answer=answer,
                 config=replace(config, optim=replace(optim, iterations=1, curve_steps=4)))  # warm-up
    if adapter.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(adapter.device)
    batched = method(config)
    peak = _peak_memory_mb(adapter.device)

    answer_ids = adapter.encode_answer(answer) if answer else adapter.generate(picture, question, config.max_new_tokens)
    prepared = adapter.prepare(picture, make_baseline(picture, config.baseline), question, answer_ids)
    optimise_composites = iterations * 2 * ig_iter
    curve_composites = 2 * (min(optim.curve_steps, mask_cells(picture, optim.mask_size)) - 1)
    bare_fb = statistics.median(bare_passes(adapter, prepared, optimise_composites, batch_size, True) for _ in range(repeats))
    bare_f = statistics.median(bare_passes(adapter, prepared, curve_composites, batch_size, False) for _ in range(repeats))
    method_seconds = batched["optimise"] + batched["curves"]
    report = {
        "model": str(model),
        "device": str(adapter.device),
        "dtype": str(adapter.dtype).replace("torch.", ""),
        "batch_size": batch_size,
        "composites": optimise_composites + curve_composites,
        "seconds_per_iteration": batched["optimise"] / iterations,
        "seconds_optimise": batched["optimise"],
        "seconds_curves": batched["curves"],
        "seconds_per_pair": batched["pair"],
        "bare_seconds_forward_backward": bare_fb,
        "bare_seconds_forward": bare_f,
        "overhead_ratio": method_seconds / (bare_fb + bare_f),
        "peak_memory_mb": peak,
    }
    if sequential:
        one = method(replace(config, optim=replace(optim, batch_size=1)))
        report["sequential_seconds"] = one["optimise"] + one["curves"]
        report["speedup_vs_sequential"] = report["sequential_seconds"] / method_seconds
    return report


def mask_cells(image, mask_size: int) -> int:
    """Cells of the mask over ``image`` (PIL), which bound the curve steps."""
    rows, cols = mask_grid_shape((image.height, image.width), mask_size)
    return rows * cols


def main(argv: list[str] | None = None) -> dict:
    from lvlm_heat.cli import main as cli_main

    report = cli_main(argv, benchmark, "python -m lvlm_heat.benchmark")
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
