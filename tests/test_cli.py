"""``python train.py`` as a user runs it: outputs on disk, TensorBoard tags, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import textured_image

from lvlm_heat.cli import main
from lvlm_heat.reporting.outputs import read_record

FAST = ["--progress", "false", "--optim.iterations", "2", "--optim.ig_iter", "3", "--optim.curve_steps", "6", "--optim.mask_size", "8"]


@pytest.fixture
def image_file(tmp_path) -> Path:
    path = tmp_path / "street.png"
    textured_image(45, 70).save(path)
    return path


def test_train_py_writes_every_output(tiny_llava, image_file, tmp_path, capsys):
    out = tmp_path / "run"
    summary = main(["--model", tiny_llava, "--image", str(image_file), "--question", "What color is the circle?",
                    "--answer", "the circle is red", "--output_dir", str(out), "--select.rule", "all", "--min_gap", "0",
                    *FAST])
    folder = out / "street"
    stored, saliency = np.load(folder / "saliency.npy"), read_record(folder).saliency
    assert stored.dtype == np.float32 and stored.shape == (45, 70)  # the work grid (the image)
    assert saliency.dtype == np.float32 and saliency.shape == (45, 70)
    assert summary["explained"] == 1 and summary["rows"][0]["id"] == "street"
    for name in ("overlay.png", "curves.png"):
        assert (folder / name).stat().st_size > 1000
    record = json.loads((folder / "result.json").read_text())
    assert record["status"] == "explained" and record["answer"] == "the circle is red"
    assert [t["text"].strip() for t in record["tokens"]] == ["the", "circle", "is", "red"]
    assert all(t["selected"] for t in record["tokens"]) and "llr" in record["tokens"][0]
    assert 0 <= record["curves"]["deletion"]["fractions"][-1] == 1.0
    # a random model: whatever its gap p(I) - p(B), the flag follows it, and a flagged pair stays out of the means
    unstable = record["p_image"] - record["p_baseline"] < 0
    assert record["unstable_normalization"] is unstable
    assert summary["means"]["deletion_auc"] == (None if unstable else pytest.approx(record["deletion_auc"]))
    assert record["settings"]["optim"]["iterations"] == 2 and record["model"] == tiny_llava
    assert record["seconds"] > 0 and len(record["history"]) == 2 + 3  # the optimisation's and the fine stage's
    assert isinstance(record["curve_out_of_range"], bool) and summary["curve_out_of_range"] in (0, 1)
    spread = summary["distributions"]["deletion_auc"]
    assert spread["count"] == (0 if unstable else 1)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: dict[str, list] = {"scalars": [], "images": []}
    for events in folder.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events)).Reload()
        for kind in tags:
            tags[kind] += accumulator.Tags()[kind]
    for term in ("deletion", "insertion", "l1", "tv", "l2", "l2_weight", "total"):
        assert f"loss/{term}" in tags["scalars"]
    assert {"auc/deletion", "auc/insertion", "refine/deletion", "refine/insertion"} <= set(tags["scalars"])
    assert {"mask/saliency", "saliency/overlay", "auc/curves"} <= set(tags["images"])
    printed = capsys.readouterr().out
    assert "deletion AUC" in printed and "[red" in printed


def test_no_grounded_token_is_a_result_not_an_error(tiny_llava, image_file, tmp_path):
    out = tmp_path / "run"
    main(["--model", tiny_llava, "--image", str(image_file), "--question", "What color is the circle?",
          "--answer", "the circle is red", "--output_dir", str(out), "--select.alpha", "100", *FAST])
    record = json.loads((out / "street" / "result.json").read_text())
    assert record["status"] == "not_grounded" and record["deletion_auc"] is None
    assert len(record["tokens"]) == 4 and not any(t["selected"] for t in record["tokens"])
    assert not (out / "street" / "saliency.npy").exists()


def test_default_output_is_a_new_run_folder(tiny_llava, image_file, tmp_path):
    args = ["--model", tiny_llava, "--image", str(image_file), "--question", "What color is the circle?",
            "--logs_root", str(tmp_path / "logs"), "--select.rule", "all", *FAST]
    main(args)
    main(args)
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["version_0", "version_1"]
    assert (tmp_path / "logs" / "version_1" / "street" / "result.json").exists()


def _error(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    return exit_info.value.code, err


def test_bad_input_gets_one_clear_line(tiny_llava, image_file, tmp_path, capsys):
    from transformers import BertConfig

    bert = tmp_path / "bert"
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8).save_pretrained(bert)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not an image")
    q = ["--question", "What is it?"]
    cases = [
        (["--model", tiny_llava, "--image", str(tmp_path / "missing.png"), *q], "image not found"),
        (["--model", tiny_llava, "--image", str(corrupt), *q], "cannot read image"),
        (["--model", str(tmp_path / "nowhere"), "--image", str(image_file), *q], "cannot load model"),
        (["--model", str(tmp_path), "--image", str(image_file), *q], "not a Hugging Face model folder"),
        (["--model", str(bert), "--image", str(image_file), *q], "no adapter for"),
        (["--model", tiny_llava, "--image", str(image_file), "--question", "  "], "question is empty"),
        (["--model", tiny_llava, "--image", str(image_file), *q, "--optim.iterations", "0"], "at least 1"),
        (["--model", tiny_llava, "--image", str(image_file), *q, "--optim.iterations", "many"], "optim.iterations"),
        (["--model", tiny_llava, "--image", str(image_file), *q, "--baseline", "grey"], "baseline"),
        (["--model", tiny_llava, "--image", str(image_file), *q, "--method", "igos,saliency"], "method is one or more"),
        (["--model", tiny_llava, "--image", str(image_file), *q, "--occlusion.segments", "1"], "occlusion.segments"),
        (["--config", str(tmp_path / "missing.yaml")], "does not exist"),
        (["--model", tiny_llava, "--image", str(image_file)], "--image and --question together"),
    ]
    for argv, expected in cases:
        code, err = _error(argv, capsys)
        assert code != 0, argv
        assert err.startswith("error: ") and expected in err, (argv, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("family", ["tiny_llava_pad", "tiny_llava_next", "tiny_llava_onevision", "tiny_qwen2_vl",
                                    "tiny_qwen2_5_vl", "tiny_deepseek_vl_hybrid"])
def test_train_py_runs_every_family(family, request, image_file, tmp_path):
    out = tmp_path / "run"
    main(["--model", request.getfixturevalue(family), "--image", str(image_file), "--question", "What color is it?",
          "--answer", "the circle is red", "--output_dir", str(out), "--select.rule", "all", *FAST])
    record = json.loads((out / "street" / "result.json").read_text())
    assert record["status"] == "explained" and record["deletion_auc"] is not None
    assert read_record(out / "street").saliency.shape == (45, 70)
    assert (out / "street" / "overlay.png").exists() and (out / "street" / "curves.png").exists()
    history = record["history"]
    assert len(history) == 2 + 3 and history[0]["mask_mean"] < 1.0  # optimisation, fine stage; the mask moved
