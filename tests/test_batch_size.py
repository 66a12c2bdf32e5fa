"""``--optim.batch_size auto``: the probe's doubling and back-off, and what ``auto`` means on the CPU."""

from __future__ import annotations

import pytest
import torch

from lvlm_heat import ExplainConfig, Explainer, OptimConfig
from lvlm_heat.batch_size import (
    CPU_BATCH_SIZE,
    PROBE_CAP,
    largest_fitting,
    most_composites,
    probe_sizes,
    probe_step,
    resolve_batch_size,
)
from lvlm_heat.cli import main, parse
from lvlm_heat.config import SelectionConfig, WarmStartConfig
from lvlm_heat.data import Query
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.prepare import prepare


class FakeMemory:
    """A step that runs out of memory above ``limit`` composites, recording the sizes it was asked for."""

    def __init__(self, limit: int) -> None:
        self.limit, self.asked = limit, []

    def __call__(self, count: int) -> None:
        self.asked.append(count)
        if count > self.limit:
            raise torch.OutOfMemoryError(f"fake: {count} composites do not fit")


@pytest.mark.parametrize(("limit", "cap", "chosen", "asked"), [
    (20, 64, 16, [1, 2, 4, 8, 16, 32]),  # doubles until the first failure, keeps the last that fitted
    (1000, 64, 64, [1, 2, 4, 8, 16, 32, 64]),  # everything fits: the cap
    (1000, 49, 49, [1, 2, 4, 8, 16, 32, 49]),  # a cap that is no power of two is tried last
    (40, 49, 32, [1, 2, 4, 8, 16, 32, 49]),
    (1, 64, 1, [1, 2]),
    (5, 1, 1, [1]),
])
def test_the_probe_doubles_until_out_of_memory_and_keeps_the_last_size_that_fitted(limit, cap, chosen, asked):
    step = FakeMemory(limit)
    assert largest_fitting(step, cap) == chosen
    assert step.asked == asked


def test_nothing_fits_is_one_clear_error():
    with pytest.raises(LvlmHeatError, match="out of memory at batch size 1: try --gradient_checkpointing"):
        largest_fitting(FakeMemory(0))


def test_other_errors_are_not_taken_for_out_of_memory():
    def broken(count: int) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        largest_fitting(broken)


def test_probe_sizes_and_cap():
    assert probe_sizes(1) == [1] and probe_sizes(2) == [1, 2] and probe_sizes(5) == [1, 2, 4, 5]
    assert probe_sizes(PROBE_CAP)[-1] == PROBE_CAP
    # the cap is the most composites one call evaluates: 2 x ig_iter (two masks: 4 x), curve steps - 1, sweeps
    assert most_composites(ExplainConfig()) == 49
    assert most_composites(ExplainConfig(optim=OptimConfig(ig_iter=30))) == 60
    assert most_composites(ExplainConfig(optim=OptimConfig(ig_iter=30, masks=2))) == 120
    no_start = ExplainConfig(optim=OptimConfig(curve_steps=5), warm_start=WarmStartConfig(depth=0),
                             select=SelectionConfig(windows=4))
    assert most_composites(no_start) == 20
    assert most_composites(ExplainConfig(optim=OptimConfig(curve_steps=5), warm_start=WarmStartConfig(windows=8))) == 64


def test_the_command_line_takes_auto_or_a_positive_number(capsys):
    assert parse(["--optim.batch_size", "auto"])["explain"].optim.batch_size == "auto"
    assert parse(["--optim.batch_size", "8"])["explain"].optim.batch_size == 8
    for bad in ("0", "big"):
        with pytest.raises(SystemExit) as stop:
            main(["--optim.batch_size", bad])
        assert stop.value.code == 2
    assert "batch_size" in capsys.readouterr().err
    with pytest.raises(ValueError, match="optim.iterations must be at least 1"):
        OptimConfig(iterations="auto")


def test_auto_is_a_fixed_default_on_the_cpu_and_numbers_pass_through(tiny_adapter, image, caplog):
    auto = ExplainConfig(optim=OptimConfig(batch_size="auto"), select=SelectionConfig(rule="all"))
    query = Query(image, "what color is the circle ?", "the circle is red")
    with caplog.at_level("WARNING", logger="lvlm_heat.batch_size"):
        first = prepare(tiny_adapter, query, auto)
        second = prepare(tiny_adapter, query, auto)
    assert first.scorer.batch_size == second.scorer.batch_size == CPU_BATCH_SIZE and auto.optim.batch_size == "auto"
    assert caplog.text.count(f"batch_size auto: {CPU_BATCH_SIZE} on the CPU") == 1  # decided once per model
    fixed = ExplainConfig(optim=OptimConfig(batch_size=3))
    assert resolve_batch_size(tiny_adapter, first.inputs, fixed) == 3


def test_the_probe_runs_forward_and_backward_passes_of_the_model(tiny_adapter, image):
    """On the CPU nothing runs out of memory: the real probe step runs every size up to its cap, on the pair's
    own processed inputs."""
    config = ExplainConfig(max_new_tokens=3, optim=OptimConfig(ig_iter=3, curve_steps=3),
                           warm_start=WarmStartConfig(depth=0), select=SelectionConfig(rule="all", windows=1))
    prepared = prepare(tiny_adapter, Query(image, "what color is the circle ?", "the circle is red"), config)
    before = prepared.scorer.passes
    assert largest_fitting(probe_step(prepared.scorer), most_composites(config)) == 6
    assert prepared.scorer.passes - before == sum(probe_sizes(6))
    assert all(p.grad is None for p in tiny_adapter.model.parameters())  # the frozen weights get no gradient


def test_an_explainer_with_auto_records_the_number(tiny_llava, image):
    config = ExplainConfig(max_new_tokens=3, optim=OptimConfig(iterations=1, ig_iter=2, curve_steps=3, batch_size="auto"))
    explainer = Explainer(tiny_llava, device="cpu", precision="fp32", config=config)
    result = explainer.explain(image, "what color is the circle ?", "the circle is red")
    assert result.settings["optim"]["batch_size"] == CPU_BATCH_SIZE
