"""How fast is an explanation, and how much of it is the model? ``lvlm-heat benchmark``.

For one pair it measures, in one run:

- the full method: wall time per pair and per phase (answer, prepare = the processor, the token selection's
  and the warm start's passes, optimise, curves), with the composites evaluated in batches of ``batch_size``;
- the bare model: the same composites as plain forward + backward passes (optimisation) and forward
  passes (curves), in the same batches (each iteration's and each curve's composites cut in chunks of
  ``batch_size``), with nothing else;
- the same method evaluating one composite at a time (``batch_size 1``);
- the model FLOPs of one composite's forward and forward + backward pass, counted by
  ``torch.utils.flop_counter`` (matrix products and attention; the backward reaches the pixels,
  not the frozen weights), hence the FLOP/s achieved and its share of the GPU's peak;
- peak GPU memory (``torch.cuda.max_memory_allocated``) and the process's peak resident memory;
- with several explainers in ``--method`` (e.g. ``igos,superpixel,grid,gradient``), each one alone on the same
  pair: seconds per pair (answer, selection, map and curves), seconds and composites of its map alone, and
  ``<method>_speedup_vs_igos``.

The figures above them (phases, bare passes, FLOPs) are the optimised mask's (``igos``).

``overhead_ratio`` = optimise + curves / bare model passes (everything that is not the model);
``speedup_vs_sequential`` = one-at-a-time / batched. The last line printed is one JSON object.
All figures come from one run on one machine: compare them as ratios, not across machines.

``--random_weights llava-1.5-7b`` (or ``qwen2.5-vl-7b``, ``internvl3-8b``, or the hub id) measures a
model of that released checkpoint's shape with random weights, built and saved to a temporary folder
and loaded like the checkpoint (:mod:`lvlm_heat.shapes`): nothing is downloaded. ``--layers`` and
``--width_divisor`` shrink it (CPU tests).
"""

from __future__ import annotations

import gc
import json
import logging
import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from lvlm_heat.adapters import load_adapter, resolve_device
from lvlm_heat.adapters.base import Adapter
from lvlm_heat.config import DataConfig, ExplainConfig, ModelConfig, SelectionConfig
from lvlm_heat.data import Query, load_image, read_dataset
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.geometry import mask_grid_shape
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.prepare import Prepared, prepare
from lvlm_heat.reporting.console import quiet_libraries

log = logging.getLogger(__name__)

PEAK_FLOPS = (  # dense bf16 / fp16 tensor-core FLOP/s from the vendors' data sheets; the first name that matches
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
)
NOT_ON_CPU = "n/a on CPU"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_passes(prepared: Prepared, calls: list[int], backward: bool) -> float:
    """Seconds for plain model passes over the composites of the method's successive ``calls`` (their counts),
    each cut in chunks of the scorer's batch size as the method cuts them: the processed image itself, with no
    mask, blend or loss around it."""
    scorer = prepared.scorer
    adapter, inputs = scorer.adapter, scorer.inputs
    steps = inputs.answer_ids.numel()
    _sync(adapter.device)
    start = time.perf_counter()
    for total in calls:

        def run(first: int, last: int) -> None:
            count = last - first
            pixels = {k: v.expand(count, *v.shape).clone().requires_grad_(backward) for k, v in inputs.image.items()}
            with torch.set_grad_enabled(backward):
                logits = adapter.model(**adapter.batch_inputs(inputs, pixels, count), logits_to_keep=steps,
                                       use_cache=False).logits
                if backward:
                    logits.float().sum().backward()

        scorer.in_chunks(total, run)
    _sync(adapter.device)
    return time.perf_counter() - start


def pass_flops(prepared: Prepared, backward: bool) -> int:
    """Model FLOPs of one composite's forward pass (and backward to the pixels), as torch counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        bare_passes(prepared, [1], backward)
    return counter.get_total_flops()


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | str:
    """The device's dense half-precision peak FLOP/s (:data:`PEAK_FLOPS`), or why there is none."""
    if device.type != "cuda":
        return NOT_ON_CPU
    if dtype not in (torch.bfloat16, torch.float16):
        return f"n/a for {str(dtype).removeprefix('torch.')} (table holds bf16 / fp16 peaks)"
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_FLOPS if key in name), f"n/a (no peak known for {name})")


def _peak_gpu_memory_mb(device: torch.device) -> float | str:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else NOT_ON_CPU


def _peak_host_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def benchmark(
    model: ModelConfig = ModelConfig(),
    image: Path | None = None,
    question: str | None = None,
    answer: str | None = None,
    explain: ExplainConfig | None = None,
    repeats: int = 3,
    sequential: bool = True,
    random_weights: str | None = None,
    layers: int | None = None,
    width_divisor: int = 1,
    image_size: tuple[int, int] | None = None,
    memory_limit_gb: float | None = None,
    per_word: bool = False,
) -> dict:
    """Time one pair (default: the first demo pair) with the full method and with bare model passes.

    Args:
        model: The model, as for ``lvlm-heat explain`` (``--model``, ``--precision``, ``--device``, ...; ignored
            but for its precision, device and gradient checkpointing with ``--random_weights``).
        image: Image of the pair; default the first demo pair's.
        question: Its question.
        answer: Fixed answer; default the model's own.
        explain: The explanation settings, as for ``lvlm-heat explain`` (``--optim.batch_size``, ...); every answer
            token is explained in one joint map (rule ``all``, maps ``joint``), since the cost does not depend on
            which (per-word maps: ``per_word``).
        repeats: Timed repetitions of the batched method and of the bare passes; medians are reported.
        sequential: Also time one composite at a time, once (slow on large models).
        random_weights: Measure a model of this released checkpoint's shape with random weights instead of
            ``model``: ``llava-1.5-7b``, ``qwen2.5-vl-7b``, ``internvl3-8b`` or the hub id (nothing is downloaded;
            the weights go to a temporary folder, 15 GB for a 7B model in bf16).
        layers: With ``random_weights``: at most this many layers in every tower.
        width_divisor: With ``random_weights``: every tower this many times narrower.
        image_size: ``[height, width]`` to resize the image to first (the cost of dynamic-resolution models depends
            on it).
        memory_limit_gb: Behave as on a GPU with this much memory: the process may allocate no more
            (``torch.cuda.set_per_process_memory_fraction``), so ``--optim.batch_size auto`` and the out-of-memory
            fallback find what fits there.
        per_word: Also time per-word maps (``--maps per_word``, one map per word of the answer beside the joint
            one) and report their cost against the joint map's.

    Returns:
        The figures (also printed, a table and then one JSON line).
    """
    quiet_libraries()
    if memory_limit_gb is not None and resolve_device(model.device).type != "cuda":
        raise LvlmHeatError("--memory_limit_gb limits GPU memory: it needs a CUDA device")
    if image is None:
        pair = read_dataset(DataConfig())[0]
        image, question = pair.image, question or pair.question
    picture = load_image(image)
    if image_size is not None:
        height, width = image_size
        picture = picture.resize((width, height))
    with tempfile.TemporaryDirectory(prefix="lvlm_heat_random_") as folder:
        name = model.model
        if random_weights is not None:
            checkpoint, name = _random_checkpoint(random_weights, folder, layers, width_divisor, model)
            model = replace(model, model=checkpoint, adapter=None)
        adapter = load_adapter(model)
    if memory_limit_gb is not None:
        total = torch.cuda.get_device_properties(adapter.device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, memory_limit_gb * 2**30 / total), adapter.device)
    report = measure(adapter, Query(picture, question, answer), explain, repeats, sequential, name, per_word)
    if memory_limit_gb is not None:
        report["memory_limit_gb"] = memory_limit_gb
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    print(json.dumps(report), flush=True)
    return report


def _random_checkpoint(shape: str, folder: str, layers: int | None, width_divisor: int,
                       model: ModelConfig) -> tuple[str, str]:
    """Save a random checkpoint of ``shape`` in the run's dtype on its device; its folder and a description."""
    from lvlm_heat.adapters import resolve_dtype
    from lvlm_heat.shapes import Resize, find_shape, save_random_checkpoint

    found = find_shape(shape)
    target = resolve_device(model.device)
    start = time.perf_counter()
    save_random_checkpoint(found.name, folder, Resize(layers, width_divisor), resolve_dtype(model.precision, target),
                           target)
    gc.collect()
    if target.type == "cuda":
        torch.cuda.empty_cache()
    log.warning("random %s saved to %s in %.0f s", found.checkpoint, folder, time.perf_counter() - start)
    resized = "".join([f", {layers} layers" if layers else "", f", 1/{width_divisor} width" if width_divisor > 1 else ""])
    return folder, f"{found.checkpoint} (random weights{resized})"


def measure(adapter: Adapter, query: Query, explain: ExplainConfig | None, repeats: int, sequential: bool,
            name: str, per_word: bool = False) -> dict:
    """The benchmark's figures for one loaded model and one pair (see the module docstring)."""
    explain = explain or ExplainConfig()
    config = replace(explain, select=SelectionConfig(rule="all"), maps="joint", method="igos")
    picture = query.image

    def method(cfg: ExplainConfig, runs: int) -> dict[str, float]:
        results = [explain_pair(adapter, replace(query), cfg) for _ in range(runs)]
        phases = {f"seconds_{key}": statistics.median(r.timings[key] for r in results) for key in results[0].timings}
        return {"seconds_per_pair": statistics.median(r.seconds for r in results), **phases,
                "map_seconds": statistics.median(r.methods[0].seconds for r in results),
                "map_passes": results[0].methods[0].passes}

    start = time.perf_counter()
    prepared = prepare(adapter, replace(query), config)  # resolves batch_size auto (the probe) for this model
    probe_seconds = time.perf_counter() - start
    resolved = replace(config, optim=replace(config.optim, batch_size=prepared.scorer.batch_size))
    optim = resolved.optim
    warm_up = replace(resolved, optim=replace(optim, iterations=1, curve_steps=4))
    explain_pair(adapter, replace(query), warm_up)
    if adapter.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(adapter.device)
    batched = method(resolved, repeats)
    gpu_peak = _peak_gpu_memory_mb(adapter.device)
    igos_map = {"seconds": batched.pop("map_seconds"), "passes": batched.pop("map_passes")}

    per_iteration = 2 * optim.masks * optim.ig_iter
    per_curve = min(optim.curve_steps, mask_cells(picture, optim.mask_size)) - 1
    optimise_composites, curve_composites = optim.iterations * per_iteration, 2 * per_curve
    bare_fb = statistics.median(bare_passes(prepared, [per_iteration] * optim.iterations, True) for _ in range(repeats))
    bare_f = statistics.median(bare_passes(prepared, [per_curve] * 2, False) for _ in range(repeats))
    method_seconds = batched["seconds_optimise"] + batched["seconds_curves"]
    flops = optimise_composites * pass_flops(prepared, True) + curve_composites * pass_flops(prepared, False)
    peak = peak_flops(adapter.device, adapter.dtype)
    achieved = flops / method_seconds
    report = {
        "model": name,
        "parameters": sum(p.numel() for p in adapter.model.parameters()),
        "device": str(adapter.device),
        "device_name": torch.cuda.get_device_name(adapter.device) if adapter.device.type == "cuda" else "cpu",
        "dtype": str(adapter.dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "image_size": f"{picture.width}x{picture.height}",
        "tokens": prepared.inputs.text["input_ids"].shape[1],
        "answer_tokens": prepared.inputs.answer_ids.numel(),
        "batch_size": optim.batch_size,
        "batch_size_chosen_by": "probe" if config.optim.batch_size == "auto" else "setting",
        "batch_size_probe_seconds": probe_seconds,
        "composites": optimise_composites + curve_composites,
        "refine_composites": resolved.refine.iterations * 2 * optim.ig_iter if resolved.refine.stage != "none" else 0,
        "seconds_per_iteration": batched["seconds_optimise"] / optim.iterations,
        **batched,
        "bare_seconds_forward_backward": bare_fb,
        "bare_seconds_forward": bare_f,
        "overhead_ratio": method_seconds / (bare_fb + bare_f),
        "flops_per_pair": flops,
        "achieved_flops_per_second": achieved,
        "peak_flops_per_second": peak,
        "share_of_peak": achieved / peak if isinstance(peak, float) else peak,
        "peak_gpu_memory_mb": gpu_peak,
        "peak_host_memory_mb": _peak_host_memory_mb(),
    }
    if config.optim.batch_size == "auto" and adapter.device.type != "cuda":
        report["batch_size_chosen_by"] = "CPU default"
    if per_word:
        words = replace(resolved, maps="per_word")
        timed = method(words, repeats)
        made = explain_pair(adapter, replace(query), words).words or []
        report["per_word_words"] = len(made)
        report["per_word_seconds_per_pair"] = timed["seconds_per_pair"]
        report["per_word_cost_ratio"] = (timed["seconds_optimise"] + timed["seconds_curves"]) / method_seconds
    if explain.methods != ["igos"]:
        for name in explain.methods:
            timed = batched if name == "igos" else method(replace(resolved, method=name), repeats)
            report[f"{name}_seconds_per_pair"] = timed["seconds_per_pair"]
            report[f"{name}_map_seconds"] = igos_map["seconds"] if name == "igos" else timed["map_seconds"]
            report[f"{name}_map_passes"] = igos_map["passes"] if name == "igos" else timed["map_passes"]
            report[f"{name}_speedup_vs_igos"] = batched["seconds_per_pair"] / timed["seconds_per_pair"]
    if sequential:
        one = method(replace(resolved, optim=replace(optim, batch_size=1)), 1)
        report["sequential_seconds"] = one["seconds_optimise"] + one["seconds_curves"]
        report["speedup_vs_sequential"] = report["sequential_seconds"] / method_seconds
    return report


def mask_cells(image, mask_size: int) -> int:
    """Cells of the mask over ``image`` (PIL), which bound the curve steps."""
    rows, cols = mask_grid_shape((image.height, image.width), mask_size)
    return rows * cols
