"""Dataset readers: generic tables and each benchmark's published layout (fixtures built here)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from conftest import textured_image

from lvlm_heat.config import DataConfig
from lvlm_heat.data import load_image, prompt_with_options, question_for, read_dataset
from lvlm_heat.errors import LvlmHeatError


def _png(path=None) -> bytes:
    buffer = io.BytesIO()
    textured_image(20, 30).save(buffer, format="PNG")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def test_jsonl_json_and_csv_with_custom_fields(tmp_path):
    records = [{"img": "a.png", "q": "What is it?", "uid": "first", "box": [1, 2, 3, 4], "gt": "a cat"},
               {"img": "b.png", "q": "And this?"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (tmp_path / "d.json").write_text(json.dumps(records))
    (tmp_path / "d.csv").write_text('img,q,uid,box,gt\na.png,What is it?,first,"[1, 2, 3, 4]",a cat\nb.png,And this?,,,\n')
    fields = dict(image_field="img", question_field="q", id_field="uid", bbox_field="box", answer_field="gt")
    for name in ("d.jsonl", "d.json", "d.csv"):
        pairs = read_dataset(DataConfig(path=tmp_path / name, image_root=tmp_path / "imgs", **fields))
        assert [p.id for p in pairs] == ["first", "b"], name
        assert pairs[0].image == tmp_path / "imgs" / "a.png" and pairs[0].bbox == (1.0, 2.0, 3.0, 4.0)
        assert pairs[0].answer == "a cat" and pairs[1].answer is None and pairs[1].bbox is None
    assert len(read_dataset(DataConfig(path=tmp_path / "d.jsonl", limit=1, **fields))) == 1


def test_missing_field_is_one_clear_error(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"picture": "a.png", "question": "q"}) + "\n")
    with pytest.raises(LvlmHeatError, match="image_field"):
        read_dataset(DataConfig(path=tmp_path / "d.jsonl"))
    with pytest.raises(LvlmHeatError, match="dataset not found"):
        read_dataset(DataConfig(path=tmp_path / "none.jsonl"))


def test_duplicate_ids_are_made_unique(tmp_path):
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"image": "same.png", "question": q}) for q in "ab"))
    assert [p.id for p in read_dataset(DataConfig(path=tmp_path / "d.jsonl"))] == ["same", "same_1"]


def test_cvbench_layout(tmp_path):
    _png(tmp_path / "img" / "2D" / "count" / "ade20k_1.png")
    record = {"idx": 0, "type": "2D", "task": "Count", "image": "img/2D/count/ade20k_1.png",
              "question": "How many chairs?", "choices": ["1", "2", "3"], "answer": "(B)", "prompt": "..."}
    (tmp_path / "test_2d.jsonl").write_text(json.dumps(record) + "\n")
    (pair,) = read_dataset(DataConfig(path=tmp_path))
    assert pair.id == "2d_0" and pair.options == ("1", "2", "3") and load_image(pair.image).size == (30, 20)
    assert question_for(pair, multiple_choice=True).splitlines()[1:3] == ["A. 1", "B. 2"]


def test_mmvp_layout(tmp_path):
    _png(tmp_path / "MMVP Images" / "1.jpg")
    (tmp_path / "Questions.csv").write_text(
        "lndex,Question,Options,Correct Answer\n1,Is the door open?,(a) Open (b) Closed,(a)\n")
    (pair,) = read_dataset(DataConfig(path=tmp_path))
    assert pair.id == "mmvp_1" and pair.options == ("Open", "Closed")
    assert pair.image == tmp_path / "MMVP Images" / "1.jpg" and load_image(pair.image).size == (30, 20)


def test_mmstar_tsv_with_embedded_images(tmp_path):
    encoded = base64.b64encode(_png()).decode()
    (tmp_path / "MMStar.tsv").write_text(
        f"index\tquestion\tanswer\tcategory\timage\n7\tWhich is red?\\nOptions: A: x, B: y\tA\tperception\t{encoded}\n")
    (pair,) = read_dataset(DataConfig(path=tmp_path / "MMStar.tsv"))
    assert pair.id == "mmstar_7" and load_image(pair.image).size == (30, 20)


def test_llava_bench_layout(tmp_path):
    _png(tmp_path / "images" / "001.jpg")
    (tmp_path / "questions.jsonl").write_text(
        json.dumps({"image": "001.jpg", "text": "Describe it.", "category": "detail", "question_id": 0}) + "\n")
    (pair,) = read_dataset(DataConfig(path=tmp_path))
    assert pair.id == "llava_bench_0" and pair.question == "Describe it." and load_image(pair.image).size == (30, 20)


def test_multiple_choice_prompt():
    assert prompt_with_options("Which?", ("cat", "dog")) == (
        "Which?\nA. cat\nB. dog\nAnswer with the option's letter from the given choices directly.")
