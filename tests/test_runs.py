"""Dataset runs as a user launches them: failures recorded, resume after a kill, two processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import textured_image

from lvlm_heat.cli import main

ROOT = Path(__file__).parents[1]
FAST = ["--progress", "false", "--optim.iterations", "2", "--optim.ig_iter", "3", "--optim.curve_steps", "6",
        "--optim.mask_size", "8", "--select.rule", "all", "--min_gap", "0", "--data.explain_reference", "true"]


def _dataset(folder: Path, count: int, extra: list[dict] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(count):
        textured_image(30 + 2 * k, 50, seed=k).save(folder / f"img{k}.png")
        lines.append({"image": f"img{k}.png", "question": "What color is it?", "answer": "the circle is red",
                      "bbox": [0, 0, 25, 15]})
    path = folder / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [*lines, *extra]) + "\n")
    return path


def _command(model: str, data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "--model", model, "--data.path", str(data),
            "--output_dir", str(out), *FAST, *extra]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}


def test_bad_pairs_are_recorded_and_the_run_goes_on(tiny_llava, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "broken.png").write_bytes(b"not a png")
    extra = [{"image": "gone.png", "question": "What?", "id": "missing"},
             {"image": "broken.png", "question": "What?", "id": "corrupt"},
             {"image": "img0.png", "question": "   ", "id": "empty"},
             {"image": "img0.png", "question": "What?", "id": "short_box", "bbox": [1, 2, 3]},
             {"image": "img1.png", "question": "What color is it?", "id": "../../escaped"},
             {"image": "img1.png", "question": "What color is it?", "id": "/abs/path"}]
    data = _dataset(tmp_path / "data", 2, extra)
    with open(data, "a") as handle:
        handle.write('{"image": "img0.png" "question": "no comma"}\n')  # line 9
    out = tmp_path / "out"
    summary = main(["--model", tiny_llava, "--data.path", str(data), "--output_dir", str(out), *FAST])
    assert (summary["explained"], summary["failed"]) == (4, 5)
    failures = summary["failures"]
    assert "image not found" in failures["missing"]
    assert "cannot read image" in failures["corrupt"]
    assert "line 5: empty 'question' field" in failures["empty"]
    assert failures["short_box"].endswith("line 6: a bbox is 4 numbers [left, top, right, bottom], got [1, 2, 3]")
    assert "line 9: not valid JSON" in failures["line_9"]
    assert summary["means"]["pointing_game"] is not None and 0 <= summary["means"]["box_mass"] <= 1
    written = json.loads((out / "summary.json").read_text())
    assert written["failed"] == 5 and len(written["rows"]) == 9
    assert (out / "summary.csv").read_text().count("\n") == 10
    folders = {row["id"]: row["folder"] for row in written["rows"]}
    assert "/" not in folders["../../escaped"] and "/" not in folders["/abs/path"]
    written_paths = [p.resolve() for p in tmp_path.rglob("result.json")]
    assert all(out.resolve() in p.parents for p in written_paths) and len(written_paths) == 9  # nothing escaped


def _means(path: Path) -> dict:
    summary = json.loads((path / "summary.json").read_text())
    rows = {r["id"]: (r["status"], r["deletion_auc"], r["insertion_auc"]) for r in summary["rows"]}
    return {"means": summary["means"], "rows": rows}


@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped(tiny_llava, tmp_path):
    data = _dataset(tmp_path / "data", 6)
    reference = tmp_path / "reference"
    stoppable = ("--adapter", "toy.StoppedLlava")
    subprocess.run(_command(tiny_llava, data, reference, *stoppable), check=True, env=_env(), capture_output=True)

    out = tmp_path / "resumed"
    killed = subprocess.run(_command(tiny_llava, data, out, *stoppable), env={**_env(), "STOP_AT_PAIR": "3"},
                            capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/result.json")}
    assert sorted(done_before) == ["img0", "img1"]  # killed while preparing the third pair
    assert not (out / "summary.json").exists()

    subprocess.run(_command(tiny_llava, data, out, *stoppable), check=True, env=_env(), capture_output=True)
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/result.json")}
    assert len(after) == 6
    assert all(after[name] == stamp for name, stamp in done_before.items())  # finished pairs were skipped
    resumed, full = _means(out), _means(reference)
    assert resumed["rows"].keys() == full["rows"].keys()
    for pair, (status, deletion, insertion) in full["rows"].items():
        assert resumed["rows"][pair][0] == status
        assert resumed["rows"][pair][1] == pytest.approx(deletion, abs=1e-5)
        assert resumed["rows"][pair][2] == pytest.approx(insertion, abs=1e-5)
    for key, value in full["means"].items():
        assert resumed["means"][key] == pytest.approx(value, abs=1e-5), key


@pytest.mark.slow
def test_two_processes_give_the_same_results_as_one(tiny_llava, tmp_path):
    data = _dataset(tmp_path / "data", 5)
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(_command(tiny_llava, data, one), check=True, env=_env(), capture_output=True)
    result = subprocess.run(
        _command(tiny_llava, data, two, "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                 "--trainer.strategy", "ddp"),
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    single, double = _means(one), _means(two)
    assert double["rows"].keys() == single["rows"].keys() and len(double["rows"]) == 5
    for pair, (status, deletion, insertion) in single["rows"].items():
        assert double["rows"][pair] == (status, pytest.approx(deletion, abs=1e-5), pytest.approx(insertion, abs=1e-5))
    for key, value in single["means"].items():
        assert double["means"][key] == pytest.approx(value, abs=1e-5), key
    # every pair explained exactly once: one TensorBoard run and one result per pair
    assert sorted(p.parent.name for p in two.glob("*/result.json")) == sorted(single["rows"])


def test_a_nan_loss_fails_that_pair_only(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"box": [0, 0, 8, 8]}))
    data = _dataset(tmp_path / "data", 2)
    summary = main(["--adapter", "toy.NaNAdapter", "--model", str(model), "--data.path", str(data),
                    "--output_dir", str(tmp_path / "out"), *FAST])
    assert summary["failed"] == 2 and summary["explained"] == 0
    assert all("FloatingPointError" in reason and "not finite" in reason for reason in summary["failures"].values())
