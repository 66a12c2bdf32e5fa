"""The method as a straight line of typed steps: prepare, selection, warm start, explainer, fine stage, record.

Following one pair from ``train.py`` to its ``result.json`` enters each step's module once, in the method's
order, and no step calls back into an earlier one; each step runs alone on what the previous one returned.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import torch
from toy import RedBoxAdapter, red_box_scene

from lvlm_heat.cli import main
from lvlm_heat.config import ExplainConfig, OptimConfig
from lvlm_heat.data import Query
from lvlm_heat.explainer import optimise_mask
from lvlm_heat.prepare import prepare
from lvlm_heat.record import ExplanationRecord
from lvlm_heat.reporting.outputs import read_record, write_pair_outputs
from lvlm_heat.warm_start import initial_mask

STEPS = ("lvlm_heat.pipeline", "lvlm_heat.prepare", "lvlm_heat.selection", "lvlm_heat.warm_start",
         "lvlm_heat.explainer", "lvlm_heat.refine")
"""The method's modules, in order. The scorer, adapters, geometry, metrics and the record's accessors are services
that every step may call."""
BOX = (36, 8, 56, 28)


def _module(frame) -> str:
    return frame.f_globals.get("__name__", "")


def _entries(run) -> list[tuple[str, str]]:
    """``(caller, callee)`` modules of every visit to a step module from another package module while ``run``
    runs. A call back into a step that is still running (the explainer's chunk function, called by the scorer it
    called; Lightning calling its module and callbacks) is part of that visit, not a new one."""
    seen = []

    def profile(frame, event, arg):
        if event != "call" or frame.f_back is None:
            return
        callee, caller = _module(frame), _module(frame.f_back)
        if callee not in STEPS or caller == callee or not caller.startswith("lvlm_heat"):
            return
        if frame.f_code.co_filename == "<string>":  # a dataclass's generated __init__: building a step's result type
            return
        outer = frame.f_back
        while outer is not None and _module(outer) != callee:
            outer = outer.f_back
        if outer is None:  # the step is not on the stack: a new visit
            seen.append((caller, callee))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return seen


def test_one_pair_from_train_py_enters_each_step_once_in_order(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"box": BOX}))
    red_box_scene(box=BOX).resize((128, 128), resample=0).save(tmp_path / "scene.png")
    argv = ["--adapter", "toy.TwoEncoderAdapter", "--model", str(folder), "--image", str(tmp_path / "scene.png"),
            "--question", "What is red?", "--output_dir", str(tmp_path / "out"), "--optim.mask_size", "8",
            "--optim.iterations", "2", "--optim.curve_steps", "6", "--progress", "false"]
    entries = _entries(lambda: main(argv))
    assert json.loads((tmp_path / "out" / "scene" / "result.json").read_text())["status"] == "explained"
    assert Counter(callee for _, callee in entries) == {step: 1 for step in STEPS}, entries
    assert entries == [  # the method's order; only the pipeline (and prepare, for the selection) calls a step
        ("lvlm_heat.dataset_run", "lvlm_heat.pipeline"),
        ("lvlm_heat.pipeline", "lvlm_heat.prepare"),
        ("lvlm_heat.prepare", "lvlm_heat.selection"),
        ("lvlm_heat.pipeline", "lvlm_heat.warm_start"),
        ("lvlm_heat.pipeline", "lvlm_heat.explainer"),
        ("lvlm_heat.pipeline", "lvlm_heat.refine"),
    ]


def test_each_step_runs_alone_on_the_previous_ones_output(tmp_path):
    """prepare -> initial_mask -> optimise_mask -> refine_mask -> record, called by hand: the same map as the whole
    pipeline."""
    from lvlm_heat.geometry import grid_to_image
    from lvlm_heat.pipeline import explain_pair
    from lvlm_heat.refine import refine_mask

    config = ExplainConfig(optim=OptimConfig(mask_size=16, iterations=3, curve_steps=8))
    query = Query(red_box_scene(box=BOX), "What color is it?", pair_id="toy", bbox=BOX)
    prepared = prepare(RedBoxAdapter(BOX), query, config)
    assert prepared.selected.tolist() == [True] and prepared.scorer.passes == 2 + 9  # the image and the baseline, the evidence sweep
    start = initial_mask(prepared, config.warm_start)
    assert start.shape == (1, 1, 16, 16) and float(start.min()) < 1
    optimised = optimise_mask(prepared, config.optim, start)
    assert optimised.masks.shape == (1, 1, 16, 16) and len(optimised.history) == 3 and len(optimised.curves) == 1
    refined = refine_mask(prepared, optimised, config.optim, config.refine)
    assert refined.masks.shape == (1, 1, 64, 64) and len(refined.history) == 3 + config.refine.iterations
    whole = explain_pair(RedBoxAdapter(BOX), Query(red_box_scene(box=BOX), "What color is it?", bbox=BOX), config)
    assert (grid_to_image((1 - refined.masks[0, 0]).numpy(), (64, 64)) == whole.saliency).all()
    assert whole.deletion_auc == refined.curves[0][0].auc and whole.insertion_auc == refined.curves[0][1].auc


def test_the_record_round_trips_through_its_json_exactly(tmp_path):
    from lvlm_heat.pipeline import explain_pair
    from lvlm_heat.reporting.outputs import strict_json

    config = ExplainConfig(maps="per_word", optim=OptimConfig(mask_size=16, iterations=2, curve_steps=8))
    record = explain_pair(RedBoxAdapter(BOX), Query(red_box_scene(box=BOX), "What color is it?", bbox=BOX,
                                                    reference="red"), config)
    data = json.loads(json.dumps(strict_json(record.to_dict())))
    again = ExplanationRecord.from_dict(data)
    assert strict_json(again.to_dict()) == data  # what result.json holds, read back, writes the same file
    for name in ("pair_id", "question", "answer", "status", "tokens", "p_image", "p_baseline", "unstable",
                 "pointing_hit", "box_mass", "history", "settings", "bbox", "reference", "answer_match", "reliance"):
        assert getattr(again, name) == getattr(record, name), name
    for mine, theirs in ((again.deletion, record.deletion), (again.insertion, record.insertion)):
        assert torch.equal(mine.fractions, theirs.fractions) and torch.equal(mine.normalized, theirs.normalized)
    write_pair_outputs(tmp_path, record)
    loaded = read_record(tmp_path)
    assert (loaded.saliency == record.saliency).all() and loaded.to_dict() == record.to_dict()
    assert loaded.words[0].saliency is not None and (loaded.words[0].saliency == record.words[0].saliency).all()
