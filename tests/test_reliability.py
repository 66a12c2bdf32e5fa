"""What a new user hit, row by row: each row of the README's "Reliability" table as a test.

Most rows run the toy two-encoder model through ``train.py`` (its answer depends on a red box: a map in a
second), the tokenizer rows the tiny LLaVA.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from toy import red_box_scene

from lvlm_heat.cli import INTERRUPTED, exit_status, main
from lvlm_heat.reporting.outputs import read_record

ROOT = Path(__file__).parents[1]
BOX = (36, 8, 56, 28)
FAST = ["--progress", "false", "--optim.iterations", "2", "--optim.ig_iter", "3", "--optim.curve_steps", "6",
        "--optim.mask_size", "8"]


@pytest.fixture
def toy(tmp_path) -> list[str]:
    """``--adapter``/``--model`` of the two-encoder toy, whose answer "red" depends on the red box."""
    folder = tmp_path / "toy_model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"box": BOX}))
    return ["--adapter", "toy.TwoEncoderAdapter", "--model", str(folder)]


def _scene(path: Path, red: bool = True) -> Path:
    picture = np.asarray(red_box_scene(box=BOX)).copy()
    if not red:
        picture[BOX[1]:BOX[3], BOX[0]:BOX[2]] = (30, 30, 220)
    Image.fromarray(picture).save(path)
    return path


def _error(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return stop.value.code, err


# -- a reused folder ---------------------------------------------------------------------------------------------
def test_another_question_or_picture_in_a_reused_folder_is_explained_again(toy, tmp_path, caplog):
    image, out = _scene(tmp_path / "scene.png"), ["--output_dir", str(tmp_path / "run")]
    main([*toy, "--image", str(image), "--question", "What is red?", *out, *FAST])
    with caplog.at_level("WARNING"):
        main([*toy, "--image", str(image), "--question", "Which one is red?", *out, *FAST])
    assert "its question changed" in caplog.text and "explaining it again" in caplog.text
    assert read_record(tmp_path / "run" / "scene").question == "Which one is red?"
    caplog.clear()
    _scene(image, red=False)  # another picture under the same file name
    with caplog.at_level("WARNING"):
        main([*toy, "--image", str(image), "--question", "Which one is red?", *out, *FAST])
    assert "its image changed" in caplog.text
    record = read_record(tmp_path / "run" / "scene")
    assert record.status == "not_grounded"  # no red box any more: the toy's answer does not depend on it


def test_the_python_api_reuses_only_the_same_pair(tmp_path, caplog):
    from lvlm_heat import ExplainConfig, Explainer, OptimConfig

    folder = tmp_path / "toy_model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"box": BOX}))
    explainer = Explainer(str(folder), adapter="toy.TwoEncoderAdapter", device="cpu",
                          config=ExplainConfig(optim=OptimConfig(iterations=2, curve_steps=6, mask_size=8)))
    image = _scene(tmp_path / "scene.png")
    first = explainer.explain(image, "What is red?", output_dir=tmp_path / "out")
    stamp = (tmp_path / "out" / "scene" / "result.json").stat().st_mtime_ns
    again = explainer.explain(image, "What is red?", output_dir=tmp_path / "out")
    assert (tmp_path / "out" / "scene" / "result.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert again.to_dict() == first.to_dict() and (again.saliency == first.saliency).all()
    with caplog.at_level("WARNING"):
        other = explainer.explain(image, "Which one is red?", output_dir=tmp_path / "out")
    assert other.question == "Which one is red?" and "its question changed" in caplog.text
    explainer.config = ExplainConfig(optim=OptimConfig(iterations=3, curve_steps=6, mask_size=8))
    caplog.clear()
    with caplog.at_level("WARNING"):
        explainer.explain(image, "Which one is red?", output_dir=tmp_path / "out")
    assert "model or settings changed" in caplog.text


def test_resuming_says_how_many_pairs_are_done_and_a_rerun_pair_starts_its_events_afresh(toy, tmp_path, capsys):
    image, out = _scene(tmp_path / "scene.png"), ["--output_dir", str(tmp_path / "run")]
    main([*toy, "--image", str(image), "--question", "What is red?", *out, *FAST])
    stale = tmp_path / "run" / "scene" / "events.out.tfevents.0.old.1"
    stale.write_bytes(b"")
    main([*toy, "--image", str(image), "--question", "What is red?", *out, *FAST])
    assert "resuming: 1 of 1 pair(s) done" in capsys.readouterr().out and stale.exists()  # reused: untouched
    main([*toy, "--image", str(image), "--question", "Which one is red?", *out, *FAST])
    assert not stale.exists() and list((tmp_path / "run" / "scene").glob("events.out.tfevents.*"))


# -- Ctrl-C ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_pairs_summarises_them_and_the_same_command_resumes(toy, tmp_path):
    rows = []
    for k in range(6):
        _scene(tmp_path / f"p{k}.png")
        rows.append(json.dumps({"id": f"p{k}", "image": f"p{k}.png", "question": "What is red?"}))
    (tmp_path / "pairs.jsonl").write_text("\n".join(rows))
    argv = [sys.executable, str(ROOT / "train.py"), *toy, "--data.path", str(tmp_path / "pairs.jsonl"),
            "--output_dir", str(tmp_path / "run"), *FAST, "--optim.iterations", "12", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "p0" / "result.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == INTERRUPTED, (out, err)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    done = summary["interrupted"]["done"]
    assert 1 <= done < 6 and summary["interrupted"]["of"] == 6 and summary["explained"] == done
    assert f"interrupted after {done} of 6 pairs; the same command resumes" in out
    assert (tmp_path / "run" / "report.html").is_file() and "Traceback" not in err
    resumed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=True)
    assert f"resuming: {done} of 6 pair(s) done" in resumed.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["explained"] == 6


def test_ctrl_c_while_a_pairs_line_is_printed_takes_effect_once_the_line_is_out():
    """The slow test above once lost its interrupt: SIGINT arrived while ``tqdm.write`` was building its lock."""
    from lvlm_heat.dataset_run import RunInterrupted, _deferred_ctrl_c, _on_ctrl_c, _stop

    printed = []
    with pytest.raises(RunInterrupted), _on_ctrl_c(_stop):
        with _deferred_ctrl_c():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # the handler runs between bytecodes: it has run by now
            printed.append("the whole line")
        printed.append("not reached")
    assert printed == ["the whole line"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- a large photo -----------------------------------------------------------------------------------------------
def test_a_large_photo_gives_outputs_of_a_few_megabytes(toy, tmp_path):
    image = tmp_path / "photo.png"
    red_box_scene(box=BOX).resize((3000, 2000), Image.NEAREST).save(image)  # the box scales to 1406..2625 x 250..875
    main([*toy, "--image", str(image), "--question", "What is red?", "--output_dir", str(tmp_path / "run"), *FAST])
    folder = tmp_path / "run" / "photo"
    sizes = {path.name: path.stat().st_size for path in folder.iterdir()}
    assert sum(sizes.values()) < 3 * 2**20, sizes
    assert sizes["saliency.npy"] < 4 * 256 * 256 + 512  # the map on its work grid (long side 256), not 6 million floats
    record = read_record(folder)
    assert record.saliency.shape == (2000, 3000) and record.image_size == (2000, 3000)
    with Image.open(folder / "overlay.png") as overlay:
        assert max(overlay.size) < 2000


# -- one line, exit status 2, before anything loads ----------------------------------------------------------------
@pytest.mark.parametrize(("flags", "expected"), [
    (["--answer", ""], "--answer is empty"),
    (["--select.alpha", "-1"], "select.alpha must be at least 0"),
    (["--min_gap", "-1"], "min_gap must be at least 0"),
    (["--trainer.devices", "0"], "trainer.devices must be at least 1"),
    (["--trainer.devices", "-1"], "trainer.devices must be at least 1"),
    (["--optim.batch_size", "abc"], "optim.batch_size: an integer or 'auto', got 'abc'"),
    (["--threads", "0"], "threads must be at least 1"),
])
def test_bad_values_are_one_line_and_exit_status_2(flags, expected, toy, tmp_path, capsys):
    image = _scene(tmp_path / "scene.png")
    code, err = _error([*toy, "--image", str(image), "--question", "What is red?", *flags], capsys)
    assert code == 2 and expected in err, err
    assert not (ROOT / "lightning_logs" / "version_0" / "scene").exists()


def test_an_unknown_hub_id_fails_at_once_without_the_network(tmp_path, capsys, monkeypatch):
    import socket

    from lvlm_heat.adapters import loading

    image = _scene(tmp_path / "scene.png")
    for offline in (True, False):
        loading.hub_reachable.cache_clear()
        tried = []

        def unreachable(*args, **kwargs):
            tried.append(args)
            raise OSError("no route to host")

        monkeypatch.setattr(socket, "create_connection", unreachable)
        if offline:
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        else:
            monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        code, err = _error(["--model", "nobody/no-such-model", "--image", str(image), "--question", "q?"], capsys)
        assert code == 1 and "the hub cannot be reached" in err and "not in the Hugging Face cache" in err
        assert len(tried) == (0 if offline else 1)  # one connection try at most, no retries
    loading.hub_reachable.cache_clear()


def test_a_model_that_fails_to_load_leaves_no_run_folder(tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"size": 3}))  # no box: the adapter cannot load it
    logs = tmp_path / "logs"
    code, err = _error(["--adapter", "toy.TwoEncoderAdapter", "--model", str(broken), "--image",
                        str(_scene(tmp_path / "scene.png")), "--question", "q?", "--logs_root", str(logs), *FAST], capsys)
    assert code == 1 and "cannot load" in err
    assert not list(logs.glob("version_*"))


# -- answers, words, questions -----------------------------------------------------------------------------------
def test_words_the_tokenizer_cannot_encode_are_named(tiny_llava, tmp_path, capsys):
    image = _scene(tmp_path / "scene.png")
    main(["--model", tiny_llava, "--image", str(image), "--question", "what color is it ?", "--answer",
          "it is chartreuse \U0001f914", "--output_dir", str(tmp_path / "run"), "--select.rule", "all", *FAST])
    warning = "the tokenizer cannot encode 'chartreuse \U0001f914': explained as 'it is'"
    assert warning in capsys.readouterr().out
    assert read_record(tmp_path / "run" / "scene").warnings == [warning]


def test_a_reference_contained_in_the_answer_is_correct(toy, tmp_path):
    image = _scene(tmp_path / "scene.png")
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"id": "a", "image": "scene.png", "question": "Colour?",
                                                      "answer": "it is red"}))
    summary = main([*toy, "--data.path", str(tmp_path / "pairs.jsonl"), "--output_dir", str(tmp_path / "run"), *FAST])
    assert image.exists() and summary["rows"][0]["answer_match"] is None  # the toy answers "red"
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"id": "a", "image": "scene.png", "question": "Colour?",
                                                      "answer": "red."}))
    summary = main([*toy, "--data.path", str(tmp_path / "pairs.jsonl"), "--output_dir", str(tmp_path / "run2"),
                    *FAST])
    assert summary["rows"][0]["answer_match"] == "normalised" and summary["rows"][0]["correct"] is True
    from lvlm_heat.data import answer_matches

    assert answer_matches("the square is green", "green") == "contains"


def test_an_emoji_question_draws_without_a_flood_of_warnings_and_a_long_one_is_shortened(toy, tmp_path, capsys):
    image = _scene(tmp_path / "scene.png")
    question = "What is red? \U0001f914 " + "and which object is it " * 200
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main([*toy, "--image", str(image), "--question", question, "--output_dir", str(tmp_path / "run"), *FAST])
    assert not [w for w in caught if "Glyph" in str(w.message)]
    echoed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("[scene] Q:"))
    assert len(echoed) < 260 and echoed.endswith("[...]")
    assert read_record(tmp_path / "run" / "scene").question == question  # all of it kept


def test_threads_are_honoured_and_recorded(toy, tmp_path):
    import torch

    before = torch.get_num_threads()
    try:
        main([*toy, "--image", str(_scene(tmp_path / "scene.png")), "--question", "What is red?", "--output_dir",
              str(tmp_path / "run"), "--threads", "1", *FAST])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["runtime"]["threads"] == 1


def test_exit_status_of_an_interrupted_run_is_130():
    assert exit_status({"failed": 0, "interrupted": {"done": 2, "of": 5}}) == 130
    assert exit_status({"failed": 1, "interrupted": None}) == 3 and exit_status({"failed": 0, "interrupted": None}) == 0
