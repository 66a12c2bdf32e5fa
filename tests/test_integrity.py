"""Nothing mixed, nothing silently wrong: the rows of issue 11 that concern runs and their folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import textured_image

from lvlm_heat.cli import PAIRS_FAILED, exit_status, main
from lvlm_heat.reporting.run_folder import RunLock

ROOT = Path(__file__).parents[1]
FAST = ["--progress", "false", "--optim.iterations", "2", "--optim.ig_iter", "3", "--optim.curve_steps", "6",
        "--optim.mask_size", "8"]


@pytest.fixture
def pair(tmp_path) -> list[str]:
    path = tmp_path / "street.png"
    textured_image(45, 70).save(path)
    return ["--image", str(path), "--question", "What color is the circle?", "--answer", "the circle is red"]


def _error(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return exit_info.value.code, err


def test_a_folder_made_with_other_settings_is_not_reused(tiny_llava, pair, tmp_path, capsys):
    out = ["--output_dir", str(tmp_path / "run")]
    main(["--model", tiny_llava, *pair, *out, *FAST, "--select.rule", "all"])
    stamp = (tmp_path / "run" / "street" / "result.json").stat().st_mtime_ns
    code, err = _error(["--model", tiny_llava, *pair, *out, *FAST, "--select.rule", "all",
                        "--optim.iterations", "3"], capsys)
    assert code == 1 and "another configuration" in err and "optim.iterations: 2 then, 3 now" in err
    assert "--resume force" in err
    # settings that change no result may differ: the finished pair is reused
    main(["--model", tiny_llava, *pair, *out, *FAST, "--select.rule", "all", "--optim.batch_size", "3"])
    assert (tmp_path / "run" / "street" / "result.json").stat().st_mtime_ns == stamp
    # forced: reused whatever made it, and the folder now records this run
    main(["--model", tiny_llava, *pair, *out, *FAST, "--select.rule", "all", "--optim.iterations", "3",
          "--resume", "force"])
    assert (tmp_path / "run" / "street" / "result.json").stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "run" / "run.json").read_text())["identity"]["settings"]["optim"]["iterations"] == 3


def test_one_run_at_a_time_per_folder(tiny_llava, pair, tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    with RunLock(folder):
        code, err = _error(["--model", tiny_llava, *pair, "--output_dir", str(folder), *FAST], capsys)
    assert code == 1 and "another run" in err and f"pid {os.getpid()}" in err
    assert not (folder / "street").exists()
    main(["--model", tiny_llava, *pair, "--output_dir", str(folder), *FAST])  # released with its holder
    assert (folder / "street" / "result.json").exists()


def test_results_are_strict_json_readable_by_everyone(tiny_llava, pair, tmp_path):
    out = tmp_path / "run"
    main(["--model", tiny_llava, *pair, "--output_dir", str(out), "--select.alpha", "100", *FAST])

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    record = json.loads((out / "street" / "result.json").read_text(), parse_constant=refuse)
    summary = json.loads((out / "summary.json").read_text(), parse_constant=refuse)
    assert record["status"] == "not_grounded" and record["p_image"] is None
    assert summary["means"]["deletion_auc"] is None
    mode = 0o666 & ~_umask()
    for path in (out / "street" / "result.json", out / "summary.json", out / "run.json"):
        assert path.stat().st_mode & 0o777 == mode, path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_meaningless_options_are_refused_in_one_line(tiny_llava, pair, tmp_path, capsys):
    for option, value in (("--max_new_tokens", "0"), ("--optim.curve_steps", "1"), ("--data.limit", "0"),
                          ("--data.limit", "-1")):
        code, err = _error(["--model", tiny_llava, *pair, option, value, "--output_dir", str(tmp_path)], capsys)
        assert code == 2 and option.lstrip("-") in err, err


def test_unusable_models_and_folders_get_one_line(tiny_llava, pair, tmp_path, capsys):
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_llava, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:2000])
    mismatched = tmp_path / "mismatched"
    shutil.copytree(tiny_llava, mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    config["text_config"]["hidden_size"] = 64
    (mismatched / "config.json").write_text(json.dumps(config))
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cases = [
        (["--model", str(truncated), *pair, "--output_dir", str(tmp_path / "a")], "cannot load"),
        (["--model", str(mismatched), *pair, "--output_dir", str(tmp_path / "b")], "do not match"),
        (["--model", tiny_llava, *pair, "--output_dir", str(a_file)], "is a file"),
    ]
    for argv, expected in cases:
        code, err = _error([*argv, *FAST], capsys)
        assert code == 1 and expected in err, err


def test_a_question_longer_than_the_context_is_said_so(tiny_llava, pair, tmp_path):
    summary = main(["--model", tiny_llava, *pair[:2], "--question", "what " * 200, "--output_dir", str(tmp_path), *FAST])
    assert summary["failed"] == 1 and exit_status(summary) == PAIRS_FAILED
    assert "more than the model's context of 128" in summary["failures"]["street"]


def test_in_memory_images_never_overwrite_each_other(tiny_llava, tmp_path):
    from lvlm_heat import ExplainConfig, Explainer, OptimConfig, SelectionConfig

    explainer = Explainer(tiny_llava, config=ExplainConfig(
        optim=OptimConfig(iterations=1, ig_iter=2, curve_steps=4, mask_size=4), select=SelectionConfig(rule="all")))
    ids = {explainer.explain(textured_image(30, 40, seed=seed), "What color is it?", "red", output_dir=tmp_path).pair_id
           for seed in (0, 1)}
    ids.add(explainer.explain(textured_image(30, 40, seed=0), "What shape is it?", "circle", output_dir=tmp_path).pair_id)
    assert len(ids) == 3 and all(i.startswith("image_") for i in ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ids)


def test_failed_pairs_give_a_distinct_exit_status(tiny_llava, tmp_path):
    data = tmp_path / "pairs.jsonl"
    textured_image(30, 40).save(tmp_path / "one.png")
    data.write_text(json.dumps({"image": "one.png", "question": "What color is it?"}) + "\n"
                    + json.dumps({"image": "gone.png", "question": "What color is it?"}) + "\n")
    command = [sys.executable, str(ROOT / "train.py"), "--model", tiny_llava, "--data.path", str(data), *FAST]
    failed = subprocess.run([*command, "--output_dir", str(tmp_path / "a")], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert failed.returncode == PAIRS_FAILED, failed.stderr[-1000:]
    assert exit_status({"failed": 0}) == 0 and exit_status(None) == 0


def test_a_reference_answer_is_compared_not_explained(tiny_llava, tmp_path):
    textured_image(30, 40).save(tmp_path / "one.png")
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"image": "one.png", "question": "What color is it?", "answer": "yellow square"}) + "\n")
    summary = main(["--model", tiny_llava, "--data.path", str(data), "--output_dir", str(tmp_path / "out"), *FAST,
                    "--select.rule", "all", "--max_new_tokens", "3"])
    row = summary["rows"][0]
    assert row["reference"] == "yellow square" and row["answer"] != "yellow square" and row["answer_match"] is None
    given = main(["--model", tiny_llava, "--data.path", str(data), "--output_dir", str(tmp_path / "given"), *FAST,
                  "--select.rule", "all", "--data.explain_reference", "true"])
    assert given["rows"][0]["answer"] == "yellow square" and given["rows"][0]["answer_match"] == "exact"


@pytest.mark.slow
def test_more_processes_than_pairs(tiny_llava, tmp_path):
    data = tmp_path / "pairs.jsonl"
    textured_image(30, 40).save(tmp_path / "one.png")
    data.write_text(json.dumps({"image": "one.png", "question": "What color is it?", "answer": "red"}) + "\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--model", tiny_llava, "--data.path", str(data), "--output_dir",
         str(tmp_path / "out"), *FAST, "--select.rule", "all", "--trainer.accelerator", "cpu", "--trainer.devices",
         "3", "--trainer.strategy", "ddp"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["pairs"] == 1 and summary["explained"] == 1


def test_a_model_with_nan_weights_fails_the_pair_saying_so(tiny_llava, pair, tmp_path, capsys):
    """Not finite logits are a broken model, not a finding about it: the pair fails with that reason, it is not
    reported as 'not visually grounded'."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    broken = tmp_path / "nan_llava"
    model = LlavaForConditionalGeneration.from_pretrained(tiny_llava)
    with torch.no_grad():
        model.lm_head.weight[3] = float("nan")
    model.save_pretrained(broken)
    AutoProcessor.from_pretrained(tiny_llava).save_pretrained(broken)
    summary = main(["--model", str(broken), *pair, "--output_dir", str(tmp_path / "run"), *FAST])
    record = json.loads((tmp_path / "run" / "street" / "result.json").read_text())
    assert record["status"] == "failed" and "logits are not finite" in record["reason"]
    assert exit_status(summary) == PAIRS_FAILED
    assert "failed: LvlmHeatError: the model's logits are not finite" in capsys.readouterr().out
