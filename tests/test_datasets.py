"""Dataset readers: generic tables and each benchmark's published layout (fixtures built here)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from conftest import textured_image

from lvlm_heat.config import DataConfig
from lvlm_heat.data import Pair, answer_matches, load_image, prompt_with_options, question_for, read_dataset
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
    fields = {"image_field": "img", "question_field": "q", "id_field": "uid", "bbox_field": "box", "answer_field": "gt"}
    for name in ("d.jsonl", "d.json", "d.csv"):
        pairs = read_dataset(DataConfig(path=tmp_path / name, image_root=tmp_path / "imgs", **fields))
        assert [p.id for p in pairs] == ["first", "b"], name
        assert pairs[0].image == tmp_path / "imgs" / "a.png" and pairs[0].bbox == (1.0, 2.0, 3.0, 4.0)
        # the answer column is a reference: recorded, not explained (the model's own answer is)
        assert pairs[0].reference == "a cat" and pairs[0].answer is None and pairs[1].reference is None
        assert pairs[1].bbox is None and [p.folder for p in pairs] == ["first", "b"]
        assert all(p.error is None for p in pairs)
        given = read_dataset(DataConfig(path=tmp_path / name, explain_reference=True, **fields))
        assert given[0].answer == given[0].reference == "a cat" and given[1].answer is None
    assert len(read_dataset(DataConfig(path=tmp_path / "d.jsonl", limit=1, **fields))) == 1


def test_limit_must_be_positive():
    for limit in (0, -1):
        with pytest.raises(ValueError, match=f"data.limit must be at least 1, got {limit}"):
            DataConfig(limit=limit)


def test_whole_file_problems_are_one_clear_error(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"picture": "a.png", "question": "q"}) + "\n")
    with pytest.raises(LvlmHeatError, match="no record has the field 'image'.*image_field"):
        read_dataset(DataConfig(path=tmp_path / "d.jsonl"))
    with pytest.raises(LvlmHeatError, match="dataset not found"):
        read_dataset(DataConfig(path=tmp_path / "none.jsonl"))
    (tmp_path / "d.json").write_text(json.dumps({"image": "a.png", "question": "q"}))
    with pytest.raises(LvlmHeatError, match="a JSON dataset is a list of objects, got an object"):
        read_dataset(DataConfig(path=tmp_path / "d.json"))
    (tmp_path / "pretty.jsonl").write_text(json.dumps([{"image": "a.png", "question": "q"}], indent=2))
    with pytest.raises(LvlmHeatError, match="not a jsonl dataset: no record could be read"):
        read_dataset(DataConfig(path=tmp_path / "pretty.jsonl"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LvlmHeatError, match="no records"):
        read_dataset(DataConfig(path=tmp_path / "empty.csv"))
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LvlmHeatError, match="not UTF-8 text"):
        read_dataset(DataConfig(path=tmp_path / "binary.jsonl"))


def test_bad_records_become_failed_pairs_with_their_line(tmp_path):
    good = {"image": "a.png", "question": "What is it?"}
    lines = [json.dumps(good), "", '{"image": "b.png" "question": "q"}', json.dumps({**good, "bbox": [1, 2, 3]}),
             json.dumps({**good, "id": "named", "bbox": [1, "x", 3, 4]}), json.dumps({"image": "c.png"}),
             json.dumps({"question": "q"}), "[1, 2]", json.dumps({**good, "question": "  "}),
             json.dumps({**good, "bbox": [5, 5, 1, 1]}), json.dumps({**good, "id": "last"})]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    pairs = read_dataset(DataConfig(path=tmp_path / "d.jsonl"))
    assert [p.error is None for p in pairs] == [True, False, False, False, False, False, False, False, False, True]
    assert [p.id for p in pairs] == ["a", "line_3", "a", "named", "c", "line_7", "line_8", "a", "a", "last"]
    errors = [p.error for p in pairs]
    assert errors[1] == "line 3: not valid JSON (Expecting ',' delimiter at column 19)"
    assert errors[2] == "line 4: a bbox is 4 numbers [left, top, right, bottom], got [1, 2, 3]"
    assert errors[3] == "line 5: a bbox is 4 numbers [left, top, right, bottom], got [1, 'x', 3, 4]"
    assert errors[4] == "line 6: no 'question' field (set --data.question_field)"
    assert errors[5] == "line 7: no 'image' field (set --data.image_field)"
    assert errors[6] == "line 8: not a JSON object (a list)"
    assert errors[7] == "line 9: empty 'question' field (set --data.question_field)"
    assert errors[8].startswith("line 10: a bbox is 4 numbers [left, top, right, bottom] with right > left")
    assert all(p.image is None and p.question == "" for p in pairs if p.error)
    assert len({p.folder for p in pairs}) == len(pairs)


def test_json_and_csv_errors_name_the_record(tmp_path):
    records = [{"image": "a.png", "question": "q"}, {"image": "b.png", "question": "q", "bbox": "[1, 2]"}, 7]
    (tmp_path / "d.json").write_text(json.dumps(records))
    pairs = read_dataset(DataConfig(path=tmp_path / "d.json"))
    assert [p.error for p in pairs] == [None, "record 2: a bbox is 4 numbers [left, top, right, bottom], got [1, 2]",
                                        "record 3: not a JSON object (a number)"]
    assert [p.id for p in pairs] == ["a", "b", "record_3"]
    (tmp_path / "d.csv").write_text('\ufeffimage, question ,bbox\na.png,"two\nlines",\nb.png,q,1 2 3 4\n'
                                    "c.png,q,x,y\nd.png,q,\"[0, 0, 1, 1]\"\n")
    pairs = read_dataset(DataConfig(path=tmp_path / "d.csv"))
    assert pairs[0].question == "two\nlines" and pairs[1].bbox == (1.0, 2.0, 3.0, 4.0) and pairs[3].error is None
    assert pairs[2].error == "record 3 (line 5): 4 values for 3 columns" and pairs[2].id == "record_3"


def test_ids_give_safe_unique_folders(tmp_path):
    ids = ["same", "same", "same_1", "same", "../escaped", "/etc/passwd", "..", "", "a b/c?", "Case", "case",
           "summary.json", "x" * 300, "x" * 200]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"image": "i.png", "question": "q", "id": i}) for i in ids))
    pairs = read_dataset(DataConfig(path=tmp_path / "d.jsonl"))
    assert [p.id for p in pairs] == [i or "i" for i in ids]  # the dataset's ids are kept; an empty one is absent
    folders = [p.folder for p in pairs]
    assert folders[:4] == ["same", "same_2", "same_1", "same_3"]
    assert folders[4:9] == ["_escaped", "_etc_passwd", "pair", "i", "a_b_c_"]
    assert folders[9:11] == ["Case", "case_1"] and folders[11] == "summary.json_1"
    assert folders[12:] == ["x" * 100, "x" * 98 + "_1"]
    assert len({f.casefold() for f in folders}) == len(folders)
    out = (tmp_path / "out").resolve()
    for folder in folders:
        assert (out / folder).resolve().parent == out and not folder.startswith(".")
    limited = read_dataset(DataConfig(path=tmp_path / "d.jsonl", limit=3))
    assert [p.folder for p in limited] == folders[:3]  # a pair keeps its folder whatever the limit


def test_pair_folder_defaults_to_the_safe_id():
    assert Pair("../x y", Path("i.png"), "q").folder == "_x_y"
    assert Pair("a", Path("i.png"), "q", folder="b").folder == "b"
    with pytest.raises(ValueError, match="safe file name"):
        Pair("a", Path("i.png"), "q", folder="../b")


def test_cvbench_layout(tmp_path):
    _png(tmp_path / "img" / "2D" / "count" / "ade20k_1.png")
    record = {"idx": 0, "type": "2D", "task": "Count", "image": "img/2D/count/ade20k_1.png",
              "question": "How many chairs?", "choices": ["1", "2", "3"], "answer": "(B)", "prompt": "..."}
    (tmp_path / "test_2d.jsonl").write_text(json.dumps(record) + "\n")
    (pair,) = read_dataset(DataConfig(path=tmp_path))
    assert pair.id == "2d_0" and pair.options == ("1", "2", "3") and load_image(pair.image).size == (30, 20)
    assert question_for(pair, multiple_choice=True).splitlines()[1:3] == ["A. 1", "B. 2"]
    assert pair.reference == "(B)" and pair.answer is None
    assert read_dataset(DataConfig(path=tmp_path, explain_reference=True))[0].answer == "(B)"


def test_cvbench_bad_record_names_its_file_and_line(tmp_path):
    record = {"idx": 0, "type": "2D", "image": "a.png", "question": "q", "choices": ["1", "2"], "answer": "(A)",
              "bbox": [[0, 0, 1, 1], [1, 1, 2, 2]]}
    (tmp_path / "test_2d.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "test_3d.jsonl").write_text(json.dumps({**record, "type": "3D"}) + "\n{broken\n")
    pairs = read_dataset(DataConfig(path=tmp_path))
    assert [p.id for p in pairs] == ["2d_0", "3d_0", "test_3d_line_2"] and pairs[0].bbox is None
    assert pairs[2].error.startswith("test_3d.jsonl line 2: not valid JSON")


def test_mmvp_layout(tmp_path):
    _png(tmp_path / "MMVP Images" / "1.jpg")
    (tmp_path / "Questions.csv").write_text(
        "lndex,Question,Options,Correct Answer\n1,Is the door open?,(a) Open (b) Closed,(a)\n")
    (pair,) = read_dataset(DataConfig(path=tmp_path))
    assert pair.id == "mmvp_1" and pair.options == ("Open", "Closed") and pair.reference == "(a)" and not pair.answer
    assert pair.image == tmp_path / "MMVP Images" / "1.jpg" and load_image(pair.image).size == (30, 20)


def test_mmstar_tsv_with_embedded_images(tmp_path):
    encoded = base64.b64encode(_png()).decode()
    (tmp_path / "MMStar.tsv").write_text(
        f"index\tquestion\tanswer\tcategory\timage\n7\tWhich is red?\\nOptions: A: x, B: y\tA\tperception\t{encoded}\n"
        "8\tAnd?\tB\tperception\tnot base64!\n")
    pair, bad = read_dataset(DataConfig(path=tmp_path))
    assert pair.id == "mmstar_7" and load_image(pair.image).size == (30, 20) and pair.reference == "A"
    assert pair.answer is None and bad.id == "mmstar_8" and bad.error.startswith("record 2 (line 3): the 'image' field")


def test_llava_bench_layout(tmp_path):
    _png(tmp_path / "images" / "001.jpg")
    (tmp_path / "questions.jsonl").write_text(
        json.dumps({"image": "001.jpg", "text": "Describe it.", "category": "detail", "question_id": 0}) + "\n")
    (pair,) = read_dataset(DataConfig(path=tmp_path))
    assert pair.id == "llava_bench_0" and pair.question == "Describe it." and load_image(pair.image).size == (30, 20)


def test_multiple_choice_prompt():
    assert prompt_with_options("Which?", ("cat", "dog")) == (
        "Which?\nA. cat\nB. dog\nAnswer with the option's letter from the given choices directly.")


@pytest.mark.parametrize(("answer", "reference", "options", "expected"), [
    ("a red umbrella", "a red umbrella", (), "exact"),
    ("A red umbrella.\n", "red umbrella", (), "normalised"),
    ("The  Eiffel tower!", "eiffel Tower", (), "normalised"),
    ("C", "(C)", (), "option"),
    ("c", "C.", (), "option"),
    ("(B) blue", "(B)", ("red", "blue"), "option"),
    ("Blue.", "(B)", ("red", "blue"), "option"),
    ("B", "blue", ("red", "blue"), "option"),
    ("b)", "(b)", ("Open", "Closed"), "option"),
    ("red", "(B)", ("red", "blue"), None),
    ("A", "(B)", (), None),
    ("C", "(C)", ("red", "blue"), "normalised"),  # no option C: only the same text
    ("C", "(B)", ("red", "blue", "green"), None),
    ("a dog", "A", (), None),
    ("anything", "", (), None),
    ("the", "a", (), None),
])
def test_answer_matches(answer, reference, options, expected):
    assert answer_matches(answer, reference, options) == expected


def test_doctests_of_the_data_helpers():
    import doctest

    from lvlm_heat.data import answers, ids

    for module in (answers, ids):
        assert doctest.testmod(module).failed == 0
