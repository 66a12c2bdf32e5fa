"""The device paths, on a CUDA GPU (skipped without one; run with ``pytest -m gpu tests/test_gpu.py``):
half precision, the batch-size probe under a real memory limit, the out-of-memory fallback and the
random-weights benchmark."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from conftest import textured_image
from PIL import Image

from lvlm_heat import ExplainConfig, Explainer, OptimConfig, cli
from lvlm_heat.adapters import load_adapter
from lvlm_heat.batch_size import PROBE_CAP, largest_fitting, most_composites, probe_sizes, probe_step
from lvlm_heat.benchmark import benchmark
from lvlm_heat.config import SelectionConfig
from lvlm_heat.data import Query
from lvlm_heat.demo import DEMO_PAIRS
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.prepare import prepare
from lvlm_heat.shapes import Resize, save_random_checkpoint

pytestmark = pytest.mark.gpu
QUESTION = "what color is the circle ?"
ALL = SelectionConfig(rule="all")


def main(argv: list[str]) -> dict:
    return cli.main(argv, benchmark, "lvlm-heat benchmark")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_on_the_gpu_selects_the_same_tokens_and_draws_nearly_the_same_map(precision):
    pairs = [json.loads(line) for line in DEMO_PAIRS.read_text().splitlines()[1:3]]
    config = ExplainConfig(optim=OptimConfig(iterations=3))
    results = {}
    for name in ("fp32", precision):
        explainer = Explainer("demo", precision=name, device="cuda", config=config)
        assert explainer.adapter.device.type == "cuda"
        assert explainer.adapter.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        results[name] = [explainer.explain(Image.open(DEMO_PAIRS.parent / p["image"]), p["question"]) for p in pairs]
    for full, half in zip(results["fp32"], results[precision]):
        assert half.answer == full.answer and half.selected_tokens == full.selected_tokens
        assert np.isfinite(half.saliency).all()
        assert np.corrcoef(full.saliency.ravel(), half.saliency.ravel())[0, 1] > 0.95
        assert abs(half.deletion_auc - full.deletion_auc) < 0.05 and abs(half.insertion_auc - full.insertion_auc) < 0.05
        assert all(np.isfinite(h["total"]) for h in half.history)


@pytest.fixture(scope="module")
def wide_adapter(tmp_path_factory):
    """LLaVA-1.5-7B's widths and vocabulary at two layers: a composite costs real memory."""
    folder = save_random_checkpoint("llava-1.5-7b", tmp_path_factory.mktemp("llava_wide"), Resize(layers=2),
                                    dtype=torch.bfloat16, device="cuda")
    adapter = load_adapter(folder, precision="bf16", device="cuda")
    yield adapter
    del adapter
    torch.cuda.empty_cache()


def _limit_memory(adapter, composites: float) -> None:
    """Let the process allocate what it holds now plus about ``composites`` composites' forward and backward."""
    config = ExplainConfig(optim=OptimConfig(batch_size=1), select=ALL)
    prepared = prepare(adapter, Query(textured_image(240, 320), QUESTION, "red " * 8), config)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    probe_step(prepared.scorer)(1)
    per_composite = torch.cuda.max_memory_allocated() - base
    del prepared
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(adapter.device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (base + composites * per_composite) / total), adapter.device)


def test_auto_batch_size_probes_the_gpu_and_backs_off_under_a_memory_limit(wide_adapter, caplog):
    config = ExplainConfig(max_new_tokens=8, optim=OptimConfig(batch_size="auto"), select=ALL)
    cap = min(PROBE_CAP, most_composites(config))
    with caplog.at_level(logging.WARNING, logger="lvlm_heat.batch_size"):
        prepared = prepare(wide_adapter, Query(textured_image(240, 320), QUESTION, "red " * 8), config)
    free = prepared.scorer.batch_size
    assert free in probe_sizes(cap) and "the largest that fits" in caplog.text
    _limit_memory(wide_adapter, 5.5)
    try:
        limited = largest_fitting(probe_step(prepared.scorer), cap)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, wide_adapter.device)
        torch.cuda.empty_cache()
    assert 1 <= limited <= 8 and limited < free


def test_out_of_memory_halves_the_batch_and_the_pair_still_finishes(wide_adapter, caplog):
    config = ExplainConfig(max_new_tokens=8, optim=OptimConfig(iterations=1, ig_iter=32, curve_steps=4, batch_size=64),
                           select=ALL)
    _limit_memory(wide_adapter, 5.5)
    try:
        with caplog.at_level(logging.WARNING, logger="lvlm_heat.scorer"):
            result = explain_pair(wide_adapter, Query(textured_image(240, 320), QUESTION, "red circle"), config)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, wide_adapter.device)
        torch.cuda.empty_cache()
    assert "out of memory: retrying with batch_size" in caplog.text
    assert result.saliency is not None and np.isfinite(result.saliency).all()


def test_the_random_weights_benchmark_on_the_gpu():
    report = main(["--random_weights", "llava-1.5-7b", "--layers", "2", "--device", "cuda", "--precision", "bf16",
                   "--optim.batch_size", "auto", "--optim.iterations", "2", "--max_new_tokens", "8", "--repeats", "1"])
    assert report["device"].startswith("cuda") and report["dtype"] == "bfloat16"
    assert report["batch_size_chosen_by"] == "probe" and report["batch_size"] >= 1
    total_mb = torch.cuda.get_device_properties(0).total_memory / 2**20
    assert isinstance(report["peak_gpu_memory_mb"], float) and 0 < report["peak_gpu_memory_mb"] < total_mb
    if isinstance(report["peak_flops_per_second"], float):  # a GPU of the table
        assert 0 < report["share_of_peak"] < 1
    assert report["overhead_ratio"] > 0 and report["speedup_vs_sequential"] > 1


def test_a_memory_limit_makes_the_probe_choose_a_smaller_batch():
    common = ["--random_weights", "llava-1.5-7b", "--layers", "2", "--device", "cuda", "--precision", "bf16",
              "--optim.batch_size", "auto", "--optim.iterations", "1", "--optim.curve_steps", "4",
              "--max_new_tokens", "8", "--repeats", "1", "--sequential", "false"]
    free = main(common)
    try:
        # the weights (1.4 GB) and a few composites' activations
        limited = main([*common, "--memory_limit_gb", str(round(free["peak_gpu_memory_mb"] / 1024 / 3 + 1.5, 2))])
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert limited["batch_size"] < free["batch_size"]
    assert limited["peak_gpu_memory_mb"] <= limited["memory_limit_gb"] * 1024
